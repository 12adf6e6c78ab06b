# xen-blkbackd - top-level Makefile.
#   make            build daemon, tools, test xenstored            (build/)
#   make check      build everything under ASan+UBSan and run the suite (build/san/)
#   make demo       the main job on real input, simulated Xen host
#   make bench      benchmarks (not tests): ratios against raw fio
#   make check-xen  real Xen under QEMU with the real Linux blkfront
#                   (XEN_DIST=trixie: Xen 4.20; XEN_PLAN=all,tap ...)
#   make bench-xen  the interleaved real-Xen comparison (Xen 4.20 dom0, ~40 min under TCG)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        Debian packages (debhelper) into build/deb/, lintian-checked
# V=1 shows full command lines.

CC      ?= gcc
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR  ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/xen-blkbackd
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR ?= /etc
SAN     ?= 0

ifeq ($(SAN),1)
O       ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      = -O1
# Test-only switches (XBD_TEST_FORBIDDEN_SYSCALL: src/common/seccomp.c) exist
# in this build only, never in the installed daemon.
TESTDEFS = -DXBD_TEST_HOOKS
else
O       ?= build
SANFLAGS =
OPT      = -O2
TESTDEFS =
endif

PKGS    := xenstore xengnttab xenevtchn liburing inih json-c libcrypto libsystemd libnbd libmicrohttpd libseccomp
# A missing build dependency stops make here, naming the pkg-config package
# (and the Debian package of scripts/deps.sh), not later in the compiler.
# The libraries without a .pc file (libaio; librbd/librados on Debian 12) are
# checked by their header.
DEB_OF_xenstore := libxen-dev
DEB_OF_xengnttab := libxen-dev
DEB_OF_xenevtchn := libxen-dev
DEB_OF_liburing := liburing-dev
DEB_OF_inih := libinih-dev
DEB_OF_json-c := libjson-c-dev
DEB_OF_libcrypto := libssl-dev
DEB_OF_libsystemd := libsystemd-dev
DEB_OF_libnbd := libnbd-dev
DEB_OF_libmicrohttpd := libmicrohttpd-dev
DEB_OF_libseccomp := libseccomp-dev
HASH := \#
HDR_DEPS := libaio.h:libaio-dev rbd/librbd.h:librbd-dev rados/librados.h:librados-dev
ifeq ($(filter-out clean distclean,$(or $(MAKECMDGOALS),all)),)
else ifeq ($(shell command -v pkg-config 2>/dev/null),)
$(error pkg-config not found: install pkg-config (scripts/deps.sh))
else
PKG_MISSING := $(strip $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(p) && echo y),,$(p))))
HDR_MISSING := $(strip $(foreach h,$(HDR_DEPS),$(if $(shell echo '$(HASH)include <$(word 1,$(subst :, ,$(h)))>' | \
                 $(CC) -E -x c - >/dev/null 2>&1 && echo y),,$(h))))
ifneq ($(PKG_MISSING),)
$(error missing build dependencies: pkg-config package(s) $(PKG_MISSING) (Debian: $(sort $(foreach p,$(PKG_MISSING),$(DEB_OF_$(p))))); run scripts/deps.sh)
endif
ifneq ($(HDR_MISSING),)
$(error missing build dependencies: header(s) $(foreach h,$(HDR_MISSING),$(word 1,$(subst :, ,$(h)))) (Debian: $(foreach h,$(HDR_MISSING),$(word 2,$(subst :, ,$(h))))); run scripts/deps.sh)
endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Ceph's librbd/librados: pkg-config names of upstream's .pc files; Debian 12's
# librbd-dev/librados-dev ship none, hence the plain -l fallback.
CEPH_PKGS  := librbd librados
PKG_CFLAGS += $(shell pkg-config --cflags $(CEPH_PKGS) 2>/dev/null)
PKG_LIBS   += $(shell pkg-config --libs $(CEPH_PKGS) 2>/dev/null || echo -lrbd -lrados)

CFLAGS  ?= $(OPT) -g
XCFLAGS := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -D__XEN_TOOLS__ -pthread \
           -Iinclude $(PKG_CFLAGS) $(SANFLAGS) $(TESTDEFS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -laio -lpthread -lm
XLDFLAGS := $(SANFLAGS) -pthread $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC  := $(sort $(wildcard src/common/*.c src/ring/*.c src/engine/*.c src/backend/*.c src/xen/*.c src/sim/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
LIB      := $(O)/libxbd.a

DAEMON   := $(O)/xen-blkbackd
XSD_SRC  := $(sort $(wildcard src/sim/xenstored/*.c))
XSD      := $(O)/xen-sim-xenstored
TOOL_DIRS := $(sort $(patsubst %/,%,$(dir $(wildcard tools/*/*.c))))
TOOLS    := $(foreach d,$(TOOL_DIRS),$(O)/$(notdir $(d)))
TLIB_SRC := $(sort $(wildcard tests/lib/*.c))
TLIB_OBJ := $(TLIB_SRC:%.c=$(O)/%.o)
TEST_SRC := $(sort $(wildcard tests/t_*.c))
TESTS    := $(TEST_SRC:tests/%.c=$(O)/tests/%)
PROGS    := $(if $(wildcard src/main.c),$(DAEMON)) $(if $(XSD_SRC),$(XSD)) $(TOOLS)

.PHONY: all tests check check-xen bench-xen demo bench install deb clean distclean
.SECONDARY:
all: $(PROGS)
tests: all $(TESTS)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(XCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(DAEMON): $(O)/src/main.o $(LIB)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(XLDFLAGS) -o $@ $^ $(LDLIBS)

# The test xenstored is standalone (only the logging and util modules of the library).
$(XSD): $(XSD_SRC:%.c=$(O)/%.o) $(O)/src/common/log.o $(O)/src/common/util.o
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(XLDFLAGS) -o $@ $^ $(LDLIBS)

define tool_rule
$(O)/$(notdir $(1)): $(patsubst %.c,$(O)/%.o,$(wildcard $(1)/*.c)) $(LIB)
	$$(if $$(Q),@echo "  LD      $$@")
	$$(Q)$$(CC) $$(XLDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(TOOL_DIRS),$(eval $(call tool_rule,$(d))))

$(O)/tests/t_%: $(O)/tests/t_%.o $(TLIB_OBJ) $(LIB)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(XLDFLAGS) -o $@ $^ $(LDLIBS)

# The suite runs the sanitizer build of everything (daemon and tools included).
check:
	$(MAKE) all
	$(MAKE) SAN=1 tests
	tests/run-tests.sh build/san

# XEN_DIST=trixie: Debian 13 dom0 with Xen 4.20 (tests/xen/README.md); XEN_PLAN=phase,...;
# XEN_DAEMON_ARGS=--seccomp=kill+--isolation=domain: options of every daemon the suite starts;
# XEN_PERF=off: no comparison jobs (data checks only), quick (phase perf's default) or full
check-xen: all
	tests/xen/deps.sh --install
	tests/xen/run.sh $(if $(XEN_DIST),--dist=$(XEN_DIST)) $(if $(XEN_PLAN),--plan=$(XEN_PLAN)) \
	    $(if $(XEN_DAEMON_ARGS),--daemon-args=$(XEN_DAEMON_ARGS)) $(if $(XEN_PERF),--perf=$(XEN_PERF))

# the full real-Xen comparison (Xen 4.20 dom0; tests/xen/perf.sh): ~40 min under TCG
bench-xen: all
	tests/xen/deps.sh --install
	tests/xen/run.sh --dist=trixie --plan=perf --perf=full \
	    $(if $(XEN_DAEMON_ARGS),--daemon-args=$(XEN_DAEMON_ARGS))

demo: all
	demo/demo.sh $(O)

bench: all
	bench/bench.sh $(O)
	bench/matrix.sh $(O)
	bench/nbd.sh $(O)
	bench/rbd.sh $(O)
	bench/qos.sh $(O)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/xen $(DESTDIR)$(LIBEXECDIR)
	install -m 755 $(DAEMON) $(DESTDIR)$(SBINDIR)/
	install -m 755 $(TOOLS) $(DESTDIR)$(BINDIR)/
	install -m 755 $(XSD) $(DESTDIR)$(LIBEXECDIR)/
	set -e; for m in man/*.[0-9]; do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -m 644 conf/xen-blkbackd.conf $(DESTDIR)$(SYSCONFDIR)/xen/
	install -d $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 conf/bash-completion/xen-blkbackd conf/bash-completion/xen-blkbackctl $(DESTDIR)$(BASHCOMPDIR)/
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" SBINDIR="$(SBINDIR)" conf/install-extra.sh

# Debian packages from a copy of the tree (dpkg-buildpackage writes next to
# the source dir): build/deb/*.deb, then lintian (warnings fail).
deb:
	scripts/make-deb.sh build/deb

clean:
	rm -rf build

distclean: clean

-include $(shell find $(O)/src $(O)/tests $(O)/tools -name '*.d' -type f 2>/dev/null)
