/*-------------------------------------------------------------------------
 *
 * fp_attribution.c
 *	  Module entry point: settings, shared memory and hooks.
 *
 * Every setting lives under the reserved "fp_attribution." prefix.  Each
 * module defines its own settings from here, so _PG_init reads as the list
 * of what the extension installs.  Loaded without shared_preload_libraries
 * (say, by CREATE EXTENSION in a plain session) the commands still work;
 * only what needs shared memory raises an error (see shmem.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fp_attribution/otlp.h"
#include "fp_attribution/receipts.h"
#include "fp_attribution/shmem.h"
#include "fp_attribution/telemetry.h"
#include "fp_attribution/trace_context.h"

PG_MODULE_MAGIC;

/* fp_attribution.attribution_window, in seconds; read by the triggers */
static int	attribution_window_s = 30 * 24 * 60 * 60;

void		_PG_init(void);

void
_PG_init(void)
{
	/* pg_upgrade must never run our hooks or start a worker */
	if (IsBinaryUpgrade)
		return;

	DefineCustomIntVariable("fp_attribution.attribution_window",
							gettext_noop("Default attribution window, from click to conversion."),
							gettext_noop("attribution.windows overrides it per affiliate."),
							&attribution_window_s,
							30 * 24 * 60 * 60, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	fp_attribution_trace_context_define_gucs();
	fp_attribution_otlp_define_gucs();
	fp_attribution_telemetry_define_gucs();
	fp_attribution_receipts_define_gucs();

	MarkGUCPrefixReserved("fp_attribution");

	if (!process_shared_preload_libraries_in_progress)
		return;

	fp_attribution_shmem_install_hooks();
	fp_attribution_worker_register();
	fp_attribution_telemetry_install_hooks();
}

/*
 * attribution.default_attribution_window() returns interval
 *
 * The current value of fp_attribution.attribution_window, for the click
 * trigger; an interval of whole seconds.
 */
PG_FUNCTION_INFO_V1(fp_attribution_default_attribution_window);
Datum
fp_attribution_default_attribution_window(PG_FUNCTION_ARGS)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = (int64) attribution_window_s * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(result);
}
