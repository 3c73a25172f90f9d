# SPDX-License-Identifier: GPL-2.0
#
# mailktls: plain `make` builds the programs: the agent (mailktlsd), the
# control tool (mailktlsctl), the milter, libmailktls (static, shared,
# pkg-config file) and the systemd units. It needs no kernel source: the
# tests, which use the kselftest harness from linux-source, build with
# `make tests`, `make check-unit` or `make check`; the module with
# `make module`.
#
#   make            the programs
#   make tests      the unit tests (needs linux-source, any version)
#   make check      install what is missing, build, run every test (VM too)
#   make check-unit build, run the unit tests
#   make run        install what is missing, build, start the agent (with a demo
#                   Dovecot and Postfix behind it; DEMO=no: the agent alone)
#   make fuzz       run every fuzz target for FUZZ_SECONDS each
#   make style      checkpatch on the module and the UAPI header
#   make deb        Debian packages into build/deb/ (mailktls, libmailktls-dev,
#                   mailktls-dkms)
#   V=1             show full commands

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?= gcc
CLANG ?= clang
CFLAGS ?= -O2 -g
KVER ?= $(shell ls /lib/modules 2>/dev/null | grep -v '^$(shell uname -r)$$' | sort -V | tail -n1)
KDIR ?= /lib/modules/$(KVER)/build
BUILD ?= build
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 10

VERSION := 0.1.0

# Quiet by default, as wireguard-tools does.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2)
MAKEFLAGS += --no-print-directory
endif

# The agent's parts, one folder each (README, "Layout"); headers are
# included by name, so a file can move between parts without edits.
AGENT_PARTS := core stage tls keyproc services base
AGENT_INC := -Iagent $(addprefix -Iagent/,$(AGENT_PARTS))

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 $(WARN) -D_GNU_SOURCE -DMAILKTLS_VERSION='"$(VERSION)"' \
	-Iinclude $(AGENT_INC) -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIC
ALL_CFLAGS := $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP
AGENT_LIBS := -luring -lssl -lcrypto -lmnl -lsystemd -lpthread

# The daemon is every .c of its parts; core/main.c only for the binary, the
# rest also links into the unit tests.
AGENT_SRCS := $(foreach p,$(AGENT_PARTS),$(wildcard agent/$(p)/*.c))
AGENT_CORE_OBJS := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(filter-out agent/core/main.c,$(AGENT_SRCS)))
LIB_SRCS := $(wildcard agent/lib/*.c)
LIB_OBJS := $(patsubst agent/lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS))
CTL_SRCS := $(wildcard agent/ctl/*.c)
CTL_OBJS := $(patsubst agent/ctl/%.c,$(BUILD)/ctl/%.o,$(CTL_SRCS))
# mailktls-milter: main.c (CLI, libmilter callbacks) only for the binary,
# the rest also links into the unit tests; it logs through the agent's log.c.
MILTER_SRCS := $(wildcard agent/milter/*.c)
MILTER_CORE_OBJS := $(patsubst agent/milter/%.c,$(BUILD)/milter/%.o,$(filter-out agent/milter/main.c,$(MILTER_SRCS)))
MILTER_AGENT_OBJS := $(BUILD)/agent/base/log.o $(BUILD)/agent/base/ratelimit.o
MILTER_LIBS := -lmilter -lmnl -lpthread

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
VM_SRCS := $(wildcard tests/vm/*_test.c)
VM_BINS := $(patsubst tests/vm/%.c,$(BUILD)/tests/vm/%,$(VM_SRCS))
VM_HELPER_SRCS := $(filter-out $(VM_SRCS),$(wildcard tests/vm/*.c))
VM_HELPER_BINS := $(patsubst tests/vm/%.c,$(BUILD)/tests/vm/%,$(VM_HELPER_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

# kselftest harness, extracted from Debian's linux-source at build time (6.1
# on Debian 12, 6.12 on Debian 13: the same two headers, same paths).
KSFT_DIR := $(BUILD)/kselftest
KSFT_HDR := $(KSFT_DIR)/kselftest_harness.h
LINUX_SOURCE_TAR ?= $(firstword $(wildcard /usr/src/linux-source-6.1.tar.xz /usr/src/linux-source-*.tar.xz))

BINS := agent/mailktlsd agent/mailktlsctl agent/libmailktls.a agent/libmailktls.so.1 \
	agent/libmailktls.pc agent/mailktls-milter
UNITS := etc/mailktls.service etc/mailktls-milter.service


.PHONY: sanitize-tests all deps check check-unit run fuzz style module clean install \
	install-dkms programs deb tests vm-tests
.DEFAULT_GOAL := all

all: programs

# What an installation needs (the Debian build uses it).
programs: $(BINS) $(UNITS)

tests: $(UNIT_BINS)

# --- agent ------------------------------------------------------------------

$(BUILD)/agent/%.o: agent/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/lib/%.o: agent/lib/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -fvisibility=hidden -c -o $@ $<

$(BUILD)/ctl/%.o: agent/ctl/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

agent/mailktlsd: $(BUILD)/agent/core/main.o $(AGENT_CORE_OBJS) $(LIB_OBJS)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(AGENT_LIBS)

agent/libmailktls.a: $(LIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

agent/libmailktls.so.1: $(LIB_OBJS)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libmailktls.so.1 -o $@ $^ -lmnl
	$(Q)ln -sf libmailktls.so.1 agent/libmailktls.so

agent/libmailktls.pc: agent/lib/libmailktls.pc.in Makefile
	$(call say,GEN,$@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|;s|@LIBDIR@|$(LIBDIR)|;s|@INCDIR@|$(INCDIR)|;s|@VERSION@|$(VERSION)|' $< > $@

etc/%.service: etc/%.service.in Makefile
	$(call say,GEN,$@)
	$(Q)sed -e 's|@SBINDIR@|$(BINDIR)|g;s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

$(BUILD)/milter/%.o: agent/milter/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

agent/mailktls-milter: $(BUILD)/milter/main.o $(MILTER_CORE_OBJS) $(MILTER_AGENT_OBJS) agent/libmailktls.a
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MILTER_LIBS)

agent/mailktlsctl: $(CTL_OBJS) agent/libmailktls.a
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CTL_OBJS) agent/libmailktls.a -lmnl -lunbound -lssl -lcrypto

# --- kselftest harness ------------------------------------------------------

$(KSFT_HDR):
	$(call say,EXTRACT,kselftest harness)
	@test -n "$(LINUX_SOURCE_TAR)" || { echo "linux-source is not installed: run scripts/install-deps.sh" >&2; exit 1; }
	@mkdir -p $(KSFT_DIR)
	$(Q)tar -xJf $(LINUX_SOURCE_TAR) -C $(KSFT_DIR) --strip-components=4 --wildcards \
		'*/tools/testing/selftests/kselftest_harness.h' '*/tools/testing/selftests/kselftest.h'
	@# 6.12's TEST_F sets 'child' after setjmp() and reads it after an
	@# ASSERT's longjmp(): without volatile its value there is indeterminate
	@# (C11 7.13.2.1; GCC 14: -Wclobbered). 6.1's harness has no such line.
	$(Q)sed -i 's/^\([[:space:]]*\)pid_t child = 1; \\$$/\1volatile pid_t child = 1; \\/' $@
	@test -f $@

# -Wno-clobbered: 6.12's harness keeps the fixture's child pid in a local of
# its TEST_F wrapper across its setjmp, which GCC 14 flags (-Wextra); the
# wrapper is the harness's code, not ours.
KSFT_CFLAGS := -I$(KSFT_DIR) -Wno-sign-compare -Wno-unused-function -Wno-shadow -Wno-clobbered

# --- unit tests -------------------------------------------------------------

$(BUILD)/tests/unit/%: tests/unit/%.c $(AGENT_CORE_OBJS) $(LIB_OBJS) $(MILTER_CORE_OBJS) | $(KSFT_HDR)
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(KSFT_CFLAGS) -o $@ $< $(AGENT_CORE_OBJS) $(LIB_OBJS) \
		$(MILTER_CORE_OBJS) $(AGENT_LIBS)

# Sanitizer build of the same unit tests: separate object tree, same sources.
SAN_BUILD := $(BUILD)/san
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_AGENT_OBJS := $(patsubst $(BUILD)/agent/%,$(SAN_BUILD)/agent/%,$(AGENT_CORE_OBJS))
SAN_LIB_OBJS := $(patsubst $(BUILD)/lib/%,$(SAN_BUILD)/lib/%,$(LIB_OBJS))
SAN_MILTER_OBJS := $(patsubst $(BUILD)/milter/%,$(SAN_BUILD)/milter/%,$(MILTER_CORE_OBJS))
SAN_UNIT_BINS := $(patsubst $(BUILD)/tests/unit/%,$(SAN_BUILD)/tests/unit/%,$(UNIT_BINS))

$(SAN_BUILD)/agent/%.o: agent/%.c
	$(call say,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -U_FORTIFY_SOURCE $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(SAN_BUILD)/lib/%.o: agent/lib/%.c
	$(call say,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -U_FORTIFY_SOURCE $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(SAN_BUILD)/milter/%.o: agent/milter/%.c
	$(call say,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -U_FORTIFY_SOURCE $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(SAN_BUILD)/tests/unit/%: tests/unit/%.c $(SAN_AGENT_OBJS) $(SAN_LIB_OBJS) $(SAN_MILTER_OBJS) | $(KSFT_HDR)
	$(call say,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -U_FORTIFY_SOURCE $(SAN_FLAGS) $(KSFT_CFLAGS) -o $@ $< \
		$(SAN_AGENT_OBJS) $(SAN_LIB_OBJS) $(SAN_MILTER_OBJS) $(AGENT_LIBS)

sanitize-tests: $(SAN_UNIT_BINS)

$(SAN_BUILD)/agent/mailktlsd: $(SAN_BUILD)/agent/core/main.o $(SAN_AGENT_OBJS) $(SAN_LIB_OBJS)
	$(call say,LD-SAN,$@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(AGENT_LIBS)

# --- fuzz targets (libFuzzer, clang) ----------------------------------------

FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_BUILD := $(BUILD)/fuzzobj
FUZZ_AGENT_OBJS := $(patsubst $(BUILD)/agent/%,$(FUZZ_BUILD)/agent/%,$(AGENT_CORE_OBJS))
FUZZ_LIB_OBJS := $(patsubst $(BUILD)/lib/%,$(FUZZ_BUILD)/lib/%,$(LIB_OBJS))
FUZZ_MILTER_OBJS := $(patsubst $(BUILD)/milter/%,$(FUZZ_BUILD)/milter/%,$(MILTER_CORE_OBJS))

$(FUZZ_BUILD)/agent/%.o: agent/%.c
	$(call say,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BASE_CFLAGS) -U_FORTIFY_SOURCE -Wno-unused-command-line-argument \
		-O1 -g -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/lib/%.o: agent/lib/%.c
	$(call say,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BASE_CFLAGS) -U_FORTIFY_SOURCE -Wno-unused-command-line-argument \
		-O1 -g -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/milter/%.o: agent/milter/%.c
	$(call say,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BASE_CFLAGS) -U_FORTIFY_SOURCE -Wno-unused-command-line-argument \
		-O1 -g -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_AGENT_OBJS) $(FUZZ_LIB_OBJS) $(FUZZ_MILTER_OBJS)
	$(call say,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BASE_CFLAGS) -U_FORTIFY_SOURCE $(FUZZ_FLAGS) -o $@ $< $(FUZZ_AGENT_OBJS) \
		$(FUZZ_LIB_OBJS) $(FUZZ_MILTER_OBJS) $(AGENT_LIBS)

# mailktlsctl audit's parsers: pure functions of agent/ctl, built from source.
$(BUILD)/fuzz/fuzz_audit_parse: tests/fuzz/fuzz_audit_parse.c agent/ctl/audit_parse.c agent/ctl/audit.h
	$(call say,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BASE_CFLAGS) -Iagent/ctl -U_FORTIFY_SOURCE $(FUZZ_FLAGS) -o $@ \
		tests/fuzz/fuzz_audit_parse.c agent/ctl/audit_parse.c -lcrypto

fuzz: $(FUZZ_BINS)
	$(Q)scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# --- VM test binaries -------------------------------------------------------

$(BUILD)/tests/vm/%: tests/vm/%.c $(AGENT_CORE_OBJS) agent/libmailktls.a | $(KSFT_HDR)
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(KSFT_CFLAGS) -o $@ $< $(AGENT_CORE_OBJS) agent/libmailktls.a $(AGENT_LIBS)

vm-tests: $(VM_BINS) $(VM_HELPER_BINS)

# --- kernel module ----------------------------------------------------------

module:
	$(call say,KBUILD,kmod/mailktls.ko)
	$(Q)$(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(filter 1,$(V)),V=1,) modules

# --- tests ------------------------------------------------------------------

deps:
	$(Q)scripts/install-deps.sh

check: deps
	$(Q)$(MAKE) all tests
	$(Q)scripts/run-tests.sh

check-unit: all tests
	$(Q)scripts/run-tests.sh unit

run: deps
	$(Q)$(MAKE) $(BINS)
	$(Q)scripts/run-agent.sh

style:
	$(Q)scripts/style.sh

install: programs
	install -D -m 0755 agent/mailktlsd $(DESTDIR)$(BINDIR)/mailktlsd
	install -D -m 0755 agent/mailktlsctl $(DESTDIR)$(BINDIR)/mailktlsctl
	install -D -m 0755 agent/mailktls-milter $(DESTDIR)$(BINDIR)/mailktls-milter
	install -D -m 0644 agent/libmailktls.a $(DESTDIR)$(LIBDIR)/libmailktls.a
	install -D -m 0755 agent/libmailktls.so.1 $(DESTDIR)$(LIBDIR)/libmailktls.so.1
	ln -sf libmailktls.so.1 $(DESTDIR)$(LIBDIR)/libmailktls.so
	install -D -m 0644 include/mailktls.h $(DESTDIR)$(INCDIR)/mailktls.h
	install -D -m 0644 include/uapi/linux/mailktls.h $(DESTDIR)$(INCDIR)/linux/mailktls.h
	install -D -m 0644 agent/libmailktls.pc $(DESTDIR)$(PKGCONFIGDIR)/libmailktls.pc
	for p in man/*.[0-9]; do \
		install -D -m 0644 $$p $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}; \
	done
	for u in $(UNITS); do install -D -m 0644 $$u $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	# An operator's configuration is never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/mailktls/mailktlsd.conf || \
		install -D -m 0644 etc/mailktlsd.conf $(DESTDIR)$(SYSCONFDIR)/mailktls/mailktlsd.conf

# The module's source where DKMS looks for it.
DKMS_SRC := $(DESTDIR)/usr/src/mailktls-$(VERSION)
install-dkms:
	install -D -m 0644 Kbuild $(DKMS_SRC)/Kbuild
	install -D -m 0644 dkms.conf $(DKMS_SRC)/dkms.conf
	install -D -m 0644 -t $(DKMS_SRC)/kmod kmod/Kbuild kmod/*.c kmod/*.h
	install -D -m 0644 -t $(DKMS_SRC)/include/uapi/linux include/uapi/linux/mailktls.h

deb:
	$(Q)scripts/build-deb.sh $(BUILD)/deb

clean:
	rm -rf $(BUILD) $(BINS) $(UNITS) agent/libmailktls.so
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null

# Keep instrumented objects between builds: they are prerequisites of
# pattern rules only, so make would delete them as intermediates.
.PRECIOUS: $(FUZZ_BUILD)/agent/%.o $(FUZZ_BUILD)/lib/%.o $(SAN_BUILD)/agent/%.o $(SAN_BUILD)/lib/%.o \
	$(FUZZ_BUILD)/milter/%.o $(SAN_BUILD)/milter/%.o

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
