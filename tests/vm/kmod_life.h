/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fixture of the mailktls.ko tests that run tags through their whole
 * lifetime (kmod_cycles, kmod_lifetime, kmod_stress): a raw generic netlink
 * socket, answers only from the module (never a query socket), and the
 * garbage collector at 100 ms so that freed tags show up quickly.
 *
 * Kept apart from kmod_util.h because FIXTURE() registers a fixture in every
 * program that includes it; kmod_cmds_test.c has a fixture of its own.
 * km_cycle() is one tag's whole life, the unit these tests repeat.
 */
#ifndef MAILKTLS_KMOD_LIFE_H
#define MAILKTLS_KMOD_LIFE_H

#include "kselftest_harness.h"
#include "kmod_util.h"

/* A TLS 1.3 tag on a pop3s connection from an IPv6 client. */
static const struct km_tag tag13 = {
	.version = 0x0304, .cipher_id = 0x1301, .cipher = "TLS_AES_128_GCM_SHA256",
	.client = "[2001:db8::5]:60000", .listener = "pop3s",
};

FIXTURE(life) {
	struct mk_genl g;
};

FIXTURE_SETUP(life)
{
	if (!km_module_loaded())
		SKIP(return, "mailktls.ko not loaded");
	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/query.sock", 1);
	ASSERT_EQ(0, mk_genl_open(&self->g));
	ASSERT_EQ(0, km_set_gc_ms(100));
	/* Tags of sockets that earlier test programs closed may still wait
	 * for the collector; counting starts once they are gone. */
	ASSERT_EQ(0, km_wait_gc());
}

FIXTURE_TEARDOWN(life)
{
	mk_genl_close(&self->g);
	km_set_gc_ms(1000);
}

/* Tag one end of a fresh pair, ask from the other, close both; *op names a failed step. */
static inline int km_cycle(struct mk_genl *g, int family, bool use_library, const char **op)
{
	struct mailktls_info mi;
	int a, d, sv[2], err;

	if (family == AF_UNIX) {
		*op = "socketpair";
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			return -errno;
		a = sv[0];
		d = sv[1];
	} else if (km_tcp_pair(family, &a, &d)) {
		*op = "tcp pair";
		return -errno;
	}
	*op = "TAG";
	err = km_tag_fd(g, a, &tag13);
	if (!err) {
		*op = use_library ? "mailktls_query_fd" : "GET";
		err = use_library ? mailktls_query_fd(d, &mi) : km_get_fd(g, d);
	}
	close(a);
	close(d);
	return err;
}

#endif
