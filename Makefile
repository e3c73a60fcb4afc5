# fp_attribution: PGXS build.  make && make install && make installcheck
EXTENSION    = fp_attribution
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big   = $(EXTENSION)
# src/<subsystem>/*.c (context, commands, ledger, telemetry, export, postbacks)
# and the glue in src/*.c; src/otlp/ holds generated code, listed below
OBJS         = $(WIN32RES) $(patsubst %.c,%.o,$(sort $(wildcard src/*.c) \
               $(filter-out src/otlp/%,$(wildcard src/*/*.c))))
PGFILEDESC   = "fp_attribution - affiliate attribution with receipts and OpenTelemetry"
PG_CPPFLAGS  = -I$(srcdir)/src/include -DFP_ATTRIBUTION_VERSION='"$(EXTVERSION)"'
SHLIB_LINK   += -lcrypto
DATA         = $(wildcard sql/$(EXTENSION)--*.sql)

# OTLP export: protoc-c generates C from proto/ into src/otlp/ at build time
PROTOS       = $(sort $(wildcard proto/*.proto))
PROTO_C      = $(patsubst proto/%.proto,src/otlp/%.pb-c.c,$(PROTOS))
OBJS        += $(PROTO_C:.c=.o)
PG_CPPFLAGS += -Isrc/otlp
SHLIB_LINK  += -lprotobuf-c -lcurl -lz

# Each suite starts its own private server with the library preloaded.
FP_TEMP_CONFIG    = --temp-config=$(srcdir)/test/fp_attribution.conf
REGRESS      = setup ids traceparent clicks conversions tenants lifecycle bad_input settings \
               otlp_settings receipts receipts_tamper receipts_signing receipt_log docs \
               telemetry_spans telemetry_metrics telemetry_logs telemetry_outcomes telemetry_lifecycle \
               fraud_rules lifecycle_reports \
               telemetry_latin1 trigger_copies server_log postbacks security statement_batches cleanup
REGRESS_OPTS = --temp-instance=tmp_regress $(FP_TEMP_CONFIG) --load-extension=plpgsql
ISOLATION    = iso_click_idempotency iso_conversion_idempotency \
               iso_receipt_chain iso_receipt_commands iso_telemetry iso_lifecycle iso_late_click \
               iso_click_in_flight iso_auto_approve iso_report_rollup iso_postback_endpoints
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso \
                 --temp-instance=tmp_check_iso $(FP_TEMP_CONFIG)
# TAP tests (test/t/*.pl) start their own servers, e.g. with tiny buffers
TAP_TESTS    = 1
PROVE_TESTS  = test/t/*.pl
PGTAP_TESTS  = $(basename $(notdir $(wildcard test/pgtap/sql/*.sql)))
NOPRELOAD_TESTS = $(basename $(notdir $(wildcard test/nopreload/sql/*.sql)))
EXTRA_CLEAN  = tmp_regress tmp_check_iso tmp_pgtap tmp_nopreload test/output_iso \
               test/pgtap/results test/pgtap/regression.* \
               test/nopreload/results test/nopreload/regression.* \
               src/otlp

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# pgTAP suites run through pg_regress too, so failures print the same diffs.
# test/check.sh runs them as a separate step (SKIP_PGTAP=1) so that one
# failing suite does not hide the results of the others.
ifndef SKIP_PGTAP
installcheck: installcheck-pgtap installcheck-nopreload
endif
.PHONY: installcheck-pgtap installcheck-nopreload regress-accept
installcheck-pgtap:
	$(pg_regress_installcheck) --inputdir=test/pgtap --outputdir=test/pgtap \
		--temp-instance=tmp_pgtap $(FP_TEMP_CONFIG) $(PGTAP_TESTS)

# A server without shared_preload_libraries: CREATE EXTENSION and the
# commands work, what needs shared memory says so.
installcheck-nopreload:
	$(pg_regress_installcheck) --inputdir=test/nopreload --outputdir=test/nopreload \
		--temp-instance=tmp_nopreload $(NOPRELOAD_TESTS)

# Copy reviewed results over the expected files
regress-accept:
	for f in results/*.out; do cp "$$f" expected/; done

# Generated OTLP code: every exporter source needs the headers first
src/otlp/%.pb-c.c src/otlp/%.pb-c.h: proto/%.proto
	@mkdir -p src/otlp
	protoc-c --proto_path=$(srcdir)/proto --c_out=src/otlp $<
$(PROTO_C:.c=.o): $(PROTO_C)
# ...kept inside the module: another library in the server that embeds the
# same .proto files must not bind to these symbols, nor we to its
# (test/exported_symbols.sh checks it)
$(PROTO_C:.c=.o): CFLAGS += -fvisibility=hidden
$(patsubst %.c,%.o,$(wildcard src/export/*.c)): $(PROTO_C) src/include/fp_attribution/otlp.h
