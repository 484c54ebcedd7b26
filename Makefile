# Makefile -- builds the subway node, the client library and CLI, and runs the tests.
#
#   make                 bin/subway, bin/subway-cli, lib/libsubway.{a,so}
#                        (installs nothing: names `make deps` when libraries are missing)
#   make deps            installs the Debian packages subway needs (deploy/install-deps.sh)
#   make run             installs what is missing, then a dev node (embedded Kafka) with a demo producer
#                        (ARGS='--listen 127.0.0.1:7800 --admin 127.0.0.1:7801' passes options to it)
#   make test            installs what is missing, then the suite, then the same under ASan+UBSan
#   make test SANITIZER=address|undefined   one pass, under that sanitizer
#   make test-python     the Python client's unit tests (proto/python/tests)
#   make model           model-checks the coordination protocol with spin (coord/model/check.sh)
#   make fuzz            each libFuzzer target (tests/fuzz/) for FUZZ_SECONDS (60), clang with ASan+UBSan
#   make test-fuzz       each fuzz target over its seed corpus only (part of make test)
#   make install PREFIX=/usr/local DESTDIR=
#   V=1 shows the commands, WERROR= drops -Werror.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= gcc
WERROR ?= -Werror
SANITIZER ?=
PKGS := rdkafka hiredis libevent libevent_pthreads msgpack openssl jansson

# Each sanitizer gets its own object and output tree so builds never mix.
ifeq ($(SANITIZER),)
  O := .
  OBJ := build/obj
  SANFLAGS :=
else
  O := build/$(SANITIZER)
  OBJ := build/$(SANITIZER)/obj
  SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

BIN := $(O)/bin
LIB := $(O)/lib

# Known once, when this make starts: a make that installs packages passes
# the work on to a new make (see run and test), never goes on with these.
# cmocka is for the unit tests only (openssl and jansson check tokens; the
# codec's test also reads proto/vectors.json with jansson).
TEST_PKGS := cmocka
MISSING := $(shell for p in $(PKGS) $(TEST_PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)
MISSING_LIBS := $(filter-out $(TEST_PKGS),$(MISSING))
ifeq ($(MISSING_LIBS),)
  PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
  PKG_LIBS := $(shell pkg-config --libs $(PKGS))
endif
ifeq ($(filter cmocka,$(MISSING)),)
  CMOCKA_LIBS := $(shell pkg-config --libs cmocka)
endif

SUBWAY_VERSION := 0.3.0
# The SONAME's number: bump it when the ABI breaks.
SUBWAY_SOVERSION := 1
SONAME := libsubway.so.$(SUBWAY_SOVERSION)
WARN := -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC $(WARN) $(SANFLAGS) -I. -Ibuild/gen $(PKG_CFLAGS) \
              -DSUBWAY_VERSION='"$(SUBWAY_VERSION)"' $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)

ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif

LIBSUBWAY_SRC := proto/codec.c proto/client.c proto/client_frames.c proto/client_requests.c proto/client_feeds.c proto/client_reconnect.c proto/client_sync.c proto/client_tls.c proto/tlserr.c proto/addr.c
# What libsubway itself links: msgpack-c, and OpenSSL for TLS (subway.pc.in
# says the same in Libs.private).
LIBSUBWAY_LIBS := -lmsgpackc -lssl -lcrypto
CLI_SRC := proto/cli.c proto/cli_split.c
BROKER_SRC := $(filter-out broker/main.c,$(wildcard broker/*.c)) $(wildcard coord/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BIN)/tests/%,$(UNIT_SRC))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BIN)/tests/%,$(TOOL_SRC))

.SECONDARY:
.PHONY: all deps deps-check test-deps-check run test model test-unit test-python test-integration test-bench test-install test-one check install uninstall clean cluster bench \
	example-search example-csv example-uniques example-fanout
all: $(BIN)/subway $(BIN)/subway-cli $(LIB)/libsubway.a $(LIB)/libsubway.so

# Every compile waits for these checks, so a missing library is reported
# once, in words, before any compiler error about a missing header. They
# install nothing: `make deps` (or make run / make test) does.
deps-check:
ifneq ($(MISSING_LIBS),)
	@echo "make: missing libraries: $(MISSING_LIBS) (pkg-config cannot find them)." >&2
	@echo "make: run 'make deps' to install them (make run and make test do it themselves)." >&2
	@exit 1
endif

test-deps-check: deps-check
ifneq ($(filter $(TEST_PKGS),$(MISSING)),)
	@echo "make: missing $(filter $(TEST_PKGS),$(MISSING)), which the unit tests need (pkg-config cannot find it)." >&2
	@echo "make: run 'make deps' to install it (make test does it itself)." >&2
	@exit 1
endif

deps:
	$(Q)bash deploy/install-deps.sh

# Lua scripts live as files; the Redis backend gets them as C strings.
build/gen/coord_scripts.h: coord/scripts/embed.sh $(wildcard coord/scripts/*.lua coord/scripts/*.inc)
	$(call say,GEN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)sh coord/scripts/embed.sh $(wildcard coord/scripts/*.lua) > $@.tmp && mv $@.tmp $@

$(OBJ)/coord/coord_redis.o: build/gen/coord_scripts.h

$(OBJ)/%.o: %.c | deps-check
	$(call say,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# libsubway exports what subway.h declares and nothing else: the codec's
# proto_* and proto_addr_split stay internal (tests/test-install.sh checks).
# The Makefile is a prerequisite so that a tree built before this flag
# does not keep exporting them.
$(call objs,$(LIBSUBWAY_SRC)): ALL_CFLAGS += -fvisibility=hidden
$(call objs,$(LIBSUBWAY_SRC)): Makefile

$(LIB)/libsubway.a: $(call objs,$(LIBSUBWAY_SRC))
	$(call say,AR,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB)/libsubway.so: $(call objs,$(LIBSUBWAY_SRC))
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(ALL_LDFLAGS) $(LIBSUBWAY_LIBS)

$(OBJ)/libbroker.a: $(call objs,$(BROKER_SRC))
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/subway: $(call objs,broker/main.c) $(OBJ)/libbroker.a $(LIB)/libsubway.a
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lpthread -lm

$(BIN)/subway-cli: $(call objs,$(CLI_SRC)) $(LIB)/libsubway.a
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBSUBWAY_LIBS)

$(call objs,$(UNIT_SRC)): | test-deps-check

# The codec's test reads the golden vectors by absolute path, so that it
# runs from any directory.
$(OBJ)/tests/unit/test_proto.o: ALL_CFLAGS += -DVECTORS_JSON='"$(CURDIR)/proto/vectors.json"'


# subway-cli's --split-by-key is tested on its own: cli_split.o is in no library.
$(BIN)/tests/test_cli_split: $(OBJ)/proto/cli_split.o

$(BIN)/tests/%: $(OBJ)/tests/unit/%.o $(OBJ)/libbroker.a $(LIB)/libsubway.a
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(CMOCKA_LIBS) $(PKG_LIBS) -lpthread -lm

$(BIN)/tests/%: $(OBJ)/tests/tools/%.o $(OBJ)/libbroker.a $(LIB)/libsubway.a
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lpthread -lm

$(BIN)/subway-bench: $(call objs,$(BENCH_SRC)) $(OBJ)/libbroker.a $(LIB)/libsubway.a
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lpthread -lm

# ------------------------------------------------------------------- running
# run and test install what is missing, then hand the work to a new make,
# which sees the libraries just installed (this one's pkg-config results
# predate them).
run:
	$(Q)bash deploy/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash deploy/run-dev.sh $(BIN) $(ARGS)

# The examples of deploy/examples (README "Examples"): each starts a node
# (and Redis) of its own and its programs, until Ctrl-C. ARGS go to run.py
# (e.g. ARGS='--http-port 8090').
example-search example-csv example-uniques example-fanout: example-%:
	$(Q)bash deploy/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)python3 deploy/examples/run.py $* --bin $(BIN) $(ARGS)

# Benchmarks print figures; they assert nothing (see tests/bench/RESULTS.md).
bench: all $(BIN)/subway-bench $(BIN)/tests/mock_kafka
	$(Q)$(BIN)/subway-bench --bin $(BIN) $(BENCH_ARGS)

# The seeded churn with faults (tests/integration/test_faults.py), long:
# CHAOS_RUNS runs of CHAOS_STEPS steps, each with a new seed (printed, and
# replayed with SUBWAY_CHURN_SEED=N).
CHAOS_RUNS ?= 5
CHAOS_STEPS ?= 300
chaos: all $(TOOL_BINS)
	$(Q)for i in $$(seq $(CHAOS_RUNS)); do \
		SUBWAY_CHURN_STEPS=$(CHAOS_STEPS) python3 tests/integration/run.py --bin $(BIN) -k FaultChurn || exit 1; \
	done

# Redis, Apache Kafka, three nodes and HAProxy from local processes (see
# README). KAFKA=mock runs librdkafka's mock instead, KAFKA=HOST:PORT an
# existing Kafka.
cluster: all $(BIN)/tests/mock_kafka
	$(Q)BIN=$(BIN) $(if $(KAFKA),KAFKA='$(KAFKA)') bash deploy/local-cluster.sh up

# ------------------------------------------------------------------- testing
test-unit: all $(UNIT_BINS)
	$(Q)bash tests/run-unit.sh $(BIN)/tests

# The Python client's codec against proto/vectors.json, and PROTOCOL.md's
# tables against the same file (its integration tests are in test-integration).
test-python:
	$(Q)python3 -m unittest discover -s proto/python/tests

# AFTER_PLAIN=1 (make test's sanitizer pass): the tests marked PLAIN_ONLY,
# which check Kafka's, scripts' or the Python client's behaviour rather than
# the node's memory, ran in the plain pass and are left out (and listed).
test-integration: all $(TOOL_BINS)
	$(Q)python3 tests/integration/run.py --bin $(BIN) $(if $(AFTER_PLAIN),--after-plain)

# Every benchmark scenario once at a tiny size, so the tool cannot rot, and
# the latency one on Apache Kafka too; no timing is asserted.
test-bench: all $(BIN)/subway-bench $(BIN)/tests/mock_kafka
	$(Q)$(BIN)/subway-bench --bin $(BIN) --tiny --json /dev/null
	$(Q)$(BIN)/subway-bench --bin $(BIN) --tiny --json /dev/null --kafka apache --scenario latency

# make install into a temp dir, then a program built against it the way a
# user would (pkg-config, <subway/subway.h>), linked to the .so and the .a.
test-install: all
	$(Q)MAKE="$(MAKE)" CC="$(CC)" SANITIZER="$(SANITIZER)" bash tests/test-install.sh

test-one: test-unit test-python test-integration test-bench test-install test-fuzz

# The plain pass, then the same suite under AddressSanitizer+UBSan, each
# once. The installer runs first even when the libraries are there: the
# tests also need haproxy, redis-server, kcat and systemd-analyze (silent
# when present).
test:
	$(Q)bash deploy/install-deps.sh
	$(Q)$(MAKE) --no-print-directory model
ifeq ($(SANITIZER),)
	$(Q)$(MAKE) --no-print-directory test-one
	$(Q)$(MAKE) --no-print-directory test-one SANITIZER=address,undefined AFTER_PLAIN=1
else
	$(Q)$(MAKE) --no-print-directory test-one
endif

check: test

# The coordination protocol's Promela model (coord/model/README.md).
# The Promela model of the coordination protocol, checked with spin (about a
# minute; coord/model/README.md).
model:
	$(Q)bash coord/model/check.sh

# ------------------------------------------------------------------- fuzzing
# libFuzzer targets, one file each in tests/fuzz/, always built with clang
# under ASan+UBSan in their own tree (build/fuzz), whatever SANITIZER says.
# Seeds (proto/vectors.json's frames, tokens signed with tests/fuzz/keys/)
# are tests/fuzz/corpus/TARGET, made by tests/fuzz/seeds.py, plus the
# regression inputs of bugs the fuzzers found. make fuzz adds what it
# finds to build/fuzz/corpus/TARGET (not in git) and writes crashes to
# build/fuzz/crash-TARGET-*: copy one into tests/fuzz/corpus/TARGET with
# its fix. make test-fuzz replays the seeds only, in a few seconds.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := proto jwt acl
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -I. $(PKG_CFLAGS) \
               -DFUZZ_KEYS_DIR='"$(CURDIR)/tests/fuzz/keys"'
fuzz_objs = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))

$(FUZZ_DIR)/obj/%.o: %.c | deps-check
	$(call say,FUZZCC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/fuzz_proto: $(call fuzz_objs,tests/fuzz/fuzz_proto.c proto/codec.c)
$(FUZZ_DIR)/fuzz_jwt: $(call fuzz_objs,tests/fuzz/fuzz_jwt.c broker/jwt.c broker/acl.c broker/keyfile.c broker/xmalloc.c)
$(FUZZ_DIR)/fuzz_acl: $(call fuzz_objs,tests/fuzz/fuzz_acl.c broker/acl.c broker/xmalloc.c)
$(FUZZ_BINS):
	$(call say,LD,$@)
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS)

.PHONY: fuzz test-fuzz
fuzz: $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t && \
		$(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/crash-$$t- $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

test-fuzz: $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_TARGETS); do \
		$(FUZZ_DIR)/fuzz_$$t -runs=0 -artifact_prefix=$(FUZZ_DIR)/crash-$$t- tests/fuzz/corpus/$$t 2>$(FUZZ_DIR)/test-$$t.log \
			|| { tail -n 40 $(FUZZ_DIR)/test-$$t.log; echo "test-fuzz: fuzz_$$t failed on its corpus" >&2; exit 1; }; \
		echo "  FUZZ   $$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs replayed"; \
	done

# ------------------------------------------------------------------ installing
# The one public header goes to include/subway/, so programs say
# #include <subway/subway.h> and subway.pc's Cflags name include/ itself.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/subway $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BIN)/subway $(BIN)/subway-cli $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB)/libsubway.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB)/libsubway.so $(DESTDIR)$(PREFIX)/lib/libsubway.so.$(SUBWAY_VERSION)
	ln -sf libsubway.so.$(SUBWAY_VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libsubway.so
	install -m 644 proto/subway.h $(DESTDIR)$(PREFIX)/include/subway/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(SUBWAY_VERSION)|g' proto/subway.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/subway.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/subway $(DESTDIR)$(PREFIX)/bin/subway-cli
	rm -f $(DESTDIR)$(PREFIX)/lib/libsubway.a $(DESTDIR)$(PREFIX)/lib/libsubway.so
	rm -f $(DESTDIR)$(PREFIX)/lib/$(SONAME) $(DESTDIR)$(PREFIX)/lib/libsubway.so.$(SUBWAY_VERSION)
	rm -rf $(DESTDIR)$(PREFIX)/include/subway
	rm -f $(DESTDIR)$(PREFIX)/lib/pkgconfig/subway.pc

clean:
	rm -rf build bin lib

-include $(shell find build -name '*.d' 2>/dev/null)
