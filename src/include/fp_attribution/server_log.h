/*-------------------------------------------------------------------------
 *
 * server_log.h
 *	  PostgreSQL's own server log as OTLP log records (server_log.c).
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_SERVER_LOG_H
#define FP_ATTRIBUTION_SERVER_LOG_H

/* Minimum level of fp_attribution.server_log_min_level; 0 = off */
extern int	fp_attribution_server_log_min_level;

/*
 * Nonzero while this backend writes log lines that are already telemetry
 * records (fp_attribution.log_json): the hook leaves them out.
 */
extern int	fp_attribution_server_log_paused;

extern void fp_attribution_server_log_define_gucs(void);
extern void fp_attribution_server_log_install_hook(void);

#endif							/* FP_ATTRIBUTION_SERVER_LOG_H */
