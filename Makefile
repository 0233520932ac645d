# hull — build, test, install.
#
#   make            build/hull, build/libhull.a, build/libhull.so (and hulld, hull-agent)
#   make test       install test dependencies, build, run every test suite
#   make demo       install dependencies, build, run a busybox container
#   make asan       the same programs with AddressSanitizer + UBSan in build/asan/
#   make fuzz       libFuzzer targets (tests/fuzz) with clang in build/fuzz/
#   make install    PREFIX=/usr/local DESTDIR=
#
# Sources are found by directory, so a new file under src/lib is part of
# libhull without touching this file.

CC       ?= gcc
PREFIX   ?= /usr/local
BUILD    ?= build
PKGS     := json-c libseccomp libcap hiredis
# microVMs: snapshot compression, vmlinux extraction (libcrypto, for digests and
# the snapshot HMAC, is linked below for the service store too).
PKGS     += libzstd liblzma
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-Wformat=2 -Wno-format-nonliteral -fno-strict-aliasing -Iinclude -iquote src/lib \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljson-c -lseccomp -lcap -lhiredis -lzstd -llzma)
# The service store (src/lib/service): SQLite and OpenSSL's libcrypto; a
# program pulls them in only if it calls the service code (hulld, hull token).
# libssl: the TLS of `hull vm migrate/receive` (src/lib/vm/migrate_tls.c).
LDLIBS   += -lsqlite3 -lssl -lcrypto -lm
# Images (src/lib/image): registries over libcurl, layers through libarchive.
# Only what never runs in `hull` itself calls them (hull-image, hulld,
# libhull.so, the tests): hull stays static; see src/lib/image/image.h.
IMAGE_LIBS := -lcurl -larchive -lpthread
# Networks (src/lib/net): netlink through libmnl, rules through libnftables.
# Debian has no static libmnl, so the static hull reaches them only through
# the hull-net helper; see src/lib/net/net.h.
IMAGE_LIBS += -lmnl -lnftables

# hull itself links statically when the static libraries are there: it is
# exec'd for every container and sandbox, and resolving shared libraries
# was a fifth of its start-up. The sanitizer build stays dynamic.
# They are looked up in the compiler's multiarch directory (x86_64-linux-gnu,
# aarch64-linux-gnu, ...), or /usr/lib where it has none.
MULTIARCH   := $(shell $(CC) -print-multiarch 2>/dev/null)
STATIC_DIR  := /usr/lib$(if $(MULTIARCH),/$(MULTIARCH))
STATIC_LIBS := $(foreach l,json-c seccomp cap hiredis sqlite3 ssl crypto zstd lzma,$(STATIC_DIR)/lib$(l).a)
ifeq ($(SAN)$(wildcard $(STATIC_LIBS)),$(STATIC_LIBS))
HULL_LDFLAGS := -static
# The static libsqlite3/libcrypto (for `hull token`) carry calls to dlopen,
# getaddrinfo and gethostbyname that hull never makes: glibc's "needs the
# shared libraries at run time" notes about exactly these are dropped; any
# other linker warning still shows.
HULL_LINK    := scripts/link-static.sh dlopen,getaddrinfo,gethostbyname
endif

ifeq ($(SAN),1)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# The fuzz build (clang): every object carries libFuzzer's coverage hooks;
# only the targets link libFuzzer's main.
ifeq ($(SAN),fuzz)
override CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -Wno-unknown-warning-option
LDFLAGS += -fsanitize=fuzzer,address,undefined
endif

LIB_SRCS  := $(shell find src/lib -name '*.c' | sort)
CLI_SRCS  := $(wildcard src/cli/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/hull $(BUILD)/libhull.a $(BUILD)/libhull.so $(BUILD)/hulld $(BUILD)/hull-agent $(BUILD)/hull-image \
	$(BUILD)/hull-net $(BUILD)/hull-worker

# hull-agent: PID 1 of a microVM, a static binary dropped into the
# initramfs hull builds. No sanitizers (it runs in the guest, alone);
# no checkout path inside, so its bytes (and the initramfs digest) do not
# depend on where the tree was built.
# The watch events and the file API's verbs are shared with hulld's. The workload's seccomp filter
# (the container level's tables) is compiled here, once, by a generator run
# on the build host (src/guest/gen/seccomp_gen.c): the agent embeds the
# program and no longer builds it with libseccomp at every boot.
AGENT_SRCS := $(wildcard src/guest/*.c) src/lib/util/watch_tree.c src/lib/sandbox/session_fs_ops.c \
	src/lib/util/error.c src/lib/util/fs.c src/lib/util/proc.c
$(BUILD)/hull-agent: $(AGENT_SRCS) $(wildcard src/guest/*.h) src/lib/vm/agent_proto.h \
		src/lib/util/watch_tree.h src/lib/sandbox/session_fs.h src/lib/util/error.h \
		src/lib/util/fs.h include/hull.h $(BUILD)/gen/agent_seccomp_bpf.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -O2 -g \
		-static -Iinclude -iquote src/lib -iquote $(BUILD)/gen -ffile-prefix-map=$(CURDIR)=. \
		-ffile-prefix-map=$(abspath $(BUILD))/gen=gen -ffile-prefix-map=$(BUILD)/gen=gen \
		$(shell pkg-config --cflags json-c 2>/dev/null) -o $@ $(AGENT_SRCS) -ljson-c

$(BUILD)/seccomp_gen: src/guest/gen/seccomp_gen.c src/lib/linux/seccomp_rules.c \
		src/lib/linux/seccomp_rules.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -O2 -iquote src/lib \
		-o $@ src/guest/gen/seccomp_gen.c src/lib/linux/seccomp_rules.c -lseccomp

$(BUILD)/gen/agent_seccomp_bpf.h: $(BUILD)/seccomp_gen
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(BUILD)/seccomp_gen > $@.tmp && mv $@.tmp $@

# `make V=1` shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(OBJ_CFLAGS) -MMD -MP -c -o $@ $<

# libhull's interface is include/hull.h alone (with hull_vm.h, its microVM
# part, which it includes): the library is built with
# hidden visibility and hull.h marks its declarations HULL_PUBLIC, so the
# internal names (cg_*, vm_*, hj_*, hull_* helpers) stay out of libhull.so.
# Linked statically (hull, hulld, the tests) they resolve as before.
LIB_CFLAGS := -fvisibility=hidden -fPIC
$(LIB_OBJS): OBJ_CFLAGS := $(LIB_CFLAGS)
# They are rebuilt when the flags change, not only their sources (objects
# from before the hidden visibility would export everything).
$(LIB_OBJS): $(BUILD)/obj/lib.flags
$(BUILD)/obj/lib.flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CFLAGS) $(LIB_CFLAGS)' | cmp -s - $@ || echo '$(CFLAGS) $(LIB_CFLAGS)' > $@
FORCE:

$(BUILD)/libhull.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The same objects as a shared library: what it exports is the public API.
$(BUILD)/libhull.so: $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -shared -Wl,-soname,libhull.so -Wl,--no-undefined -o $@ $^ $(LDLIBS) $(IMAGE_LIBS)

# Linked beside, then copied into place in one pass, as `make install` or a
# package writes it: the linker writes its output in small pieces out of
# order, which leaves the file's page cache in 4 KiB pages, and every exec
# of such a copy (one per sandbox run) then maps and faults its text a page
# at a time: 0.2 ms more CPU per `hull sandbox run` than the same bytes
# written at once (issue 13). The rename keeps a running hull's text intact.
$(BUILD)/hull: $(CLI_OBJS) $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(HULL_LINK) $(CC) $(LDFLAGS) $(HULL_LDFLAGS) -o $@.link $(CLI_OBJS) $(BUILD)/libhull.a $(LDLIBS)
	$(Q)cp $@.link $@.new && rm -f $@.link && mv -f $@.new $@

# hull-image: the program behind `hull image` (hull execs it from beside
# itself). Dynamically linked: libcurl and libarchive have no static builds
# in Debian, and only image verbs pay for loading them.
IMAGE_CLI_SRCS := $(wildcard src/cli/image/*.c)
IMAGE_CLI_OBJS := $(IMAGE_CLI_SRCS:%.c=$(BUILD)/obj/%.o)
$(BUILD)/hull-image: $(IMAGE_CLI_OBJS) $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(IMAGE_CLI_OBJS) $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS)

# hull-net: the program behind `hull network` and the helper through which
# every run changes the host's network (libmnl, libnftables).
NET_CLI_SRCS := $(wildcard src/cli/net/*.c)
NET_CLI_OBJS := $(NET_CLI_SRCS:%.c=$(BUILD)/obj/%.o)
$(BUILD)/hull-net: $(NET_CLI_OBJS) $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(NET_CLI_OBJS) $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS)

# hulld, the service: dynamically linked (libmicrohttpd brings GnuTLS).
DAEMON_SRCS := $(wildcard src/daemon/*.c)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
DAEMON_LIBS := -lmicrohttpd -lpthread
# hulld answers in place of libmicrohttpd's own error pages: these are
# called by the library itself (src/daemon/mhd_hooks.c).
DAEMON_LDFLAGS := -Wl,--export-dynamic-symbol=MHD_queue_response \
	-Wl,--export-dynamic-symbol=MHD_lookup_connection_value_n

# The OpenAPI document is built into hulld (.incbin).
$(BUILD)/obj/src/daemon/openapi.o: docs/openapi.json

$(BUILD)/hulld: $(DAEMON_OBJS) $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $(DAEMON_LDFLAGS) -o $@ $(DAEMON_OBJS) $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS) $(DAEMON_LIBS)

# hull-worker: the process in which hulld's runs call the library, one at a
# time (src/daemon/runner_worker.c). Static like hull, with none of hulld's
# shared libraries: the sandbox's first clone copies every mapping of the
# process it is made from. hulld runs it from beside itself (or ../lib/hull).
WORKER_OBJS := $(BUILD)/obj/src/worker/main.o \
	$(addprefix $(BUILD)/obj/src/daemon/,runner_worker.o frame.o)
$(BUILD)/obj/src/worker/main.o: override CFLAGS += -iquote src/daemon
$(BUILD)/hull-worker: $(WORKER_OBJS) $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(HULL_LINK) $(CC) $(LDFLAGS) $(HULL_LDFLAGS) -o $@ $(WORKER_OBJS) $(BUILD)/libhull.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhull.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS) -lcmocka

# Test drivers (tests/tools/*.c) link libhull like the unit tests; the
# integration tests run them from $(BUILD)/tests/.
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/%)
all: $(TOOL_BINS)

$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libhull.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS)

# Benchmark drivers (bench/*.c), built on demand by the bench scripts with
# exactly the libraries libhull needs: `make build/bench/NAME`.
$(BUILD)/bench/%: bench/%.c $(BUILD)/libhull.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS)

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

asan:
	$(MAKE) BUILD=build/asan SAN=1 OPT=-O1 all $(UNIT_BINS:$(BUILD)/%=build/asan/%)

# libFuzzer targets (tests/fuzz/README.md): clang, with libhull and the
# daemon built again with coverage and ASan+UBSan under build/fuzz/.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/%)

fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang SAN=fuzz OPT=-O1 fuzz-bins

fuzz-bins: $(FUZZ_BINS)

# The guest's frame reader (no libhull in it) and hulld's parts other than
# http.c (the target includes it) and main.c (it has main()).
$(BUILD)/fuzz_agent: $(BUILD)/obj/src/guest/agent_io.o
$(BUILD)/fuzz_hulld: $(filter-out %/http.o %/main.o,$(DAEMON_OBJS))
$(BUILD)/fuzz_hulld: FUZZ_LIBS := $(DAEMON_LIBS)
# The port proxy's head handling alone.
$(BUILD)/fuzz_ports: $(BUILD)/obj/src/daemon/sbx_ports_head.o
# The target counts libseccomp contexts made and released (fuzz_spec.c).
$(BUILD)/fuzz_spec: FUZZ_LIBS := -Wl,--wrap=seccomp_init -Wl,--wrap=seccomp_release

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libhull.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP -MF $(BUILD)/obj/fuzz_$*.d -o $@ $< $(filter %.o,$^) \
		$(BUILD)/libhull.a $(LDLIBS) $(IMAGE_LIBS) $(FUZZ_LIBS)

deps:
	scripts/deps.sh build
	scripts/deps.sh daemon

test:
	scripts/deps.sh test
	scripts/deps.sh fuzz
	scripts/deps.sh engines
	scripts/deps.sh daemon
	scripts/deps.sh queue
	scripts/deps.sh vm
	scripts/deps.sh image
	scripts/deps.sh net
	scripts/deps.sh js
	$(MAKE) all $(UNIT_BINS)
	$(MAKE) asan
	$(MAKE) fuzz
	scripts/test.sh

demo:
	scripts/deps.sh build
	scripts/deps.sh daemon
	$(MAKE) all
	scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(BUILD)/hull $(DESTDIR)$(PREFIX)/bin/hull
	install -m 0755 $(BUILD)/hulld $(DESTDIR)$(PREFIX)/bin/hulld
	install -d $(DESTDIR)$(PREFIX)/lib/hull
	install -m 0755 $(BUILD)/hull-agent $(DESTDIR)$(PREFIX)/lib/hull/hull-agent
	install -m 0755 $(BUILD)/hull-image $(DESTDIR)$(PREFIX)/lib/hull/hull-image
	install -m 0755 $(BUILD)/hull-net $(DESTDIR)$(PREFIX)/lib/hull/hull-net
	install -m 0755 $(BUILD)/hull-worker $(DESTDIR)$(PREFIX)/lib/hull/hull-worker
	install -m 0644 $(BUILD)/libhull.a $(DESTDIR)$(PREFIX)/lib/libhull.a
	install -m 0644 include/hull.h include/hull_vm.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/

format:
	clang-format -i $$(find include src tests bench -name '*.[ch]')

format-check:
	clang-format --dry-run --Werror $$(find include src tests bench -name '*.[ch]')

clean:
	rm -rf -- $(BUILD)

.PHONY: all unit asan fuzz fuzz-bins deps test demo install format format-check clean FORCE

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
