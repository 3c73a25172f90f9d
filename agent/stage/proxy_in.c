// SPDX-License-Identifier: GPL-2.0
/*
 * The PROXY v2 stage of an accept_proxy listener. Reads are exact: the
 * fixed 16 bytes, then the length they announce, so the first byte after
 * the header (a ClientHello, or on a STARTTLS listener the client's first
 * cleartext command) is left in the socket for the next stage. A peer
 * outside trusted_proxies is closed before a byte is read; a malformed,
 * oversized or late header closes the connection before TLS. Each refusal
 * is one rate-limited log line: a scan of the port must not flood the log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "proxy_in.h"
#include "proxy_v2.h"
#include "stage.h"

#define PP2_CMD_LOCAL		0
#define PP2_FAMILY_INET		1
#define PP2_FAMILY_INET6	2
#define PP2_TRANSPORT_STREAM	1

/**
 * mk_proxy_in_parse() - judge one whole header from a trusted balancer
 * @buf:    the header, exactly
 * @len:    its length
 * @out:    what it says
 * @reason: on failure, the token for the log line
 *
 * Return: 0, or -EINVAL.
 */
int mk_proxy_in_parse(const uint8_t *buf, size_t len, struct mk_proxy_in *out,
		      const char **reason)
{
	struct mk_proxy_decoded d;

	memset(out, 0, sizeof(*out));
	if (mk_proxy_v2_decode(buf, len, &d) != (ssize_t)len) {
		*reason = "malformed";
		return -EINVAL;
	}
	if (d.pd_command == PP2_CMD_LOCAL) {
		out->pn_local = true;
		return 0;
	}
	if (d.pd_transport != PP2_TRANSPORT_STREAM ||
	    (d.pd_family != PP2_FAMILY_INET && d.pd_family != PP2_FAMILY_INET6)) {
		*reason = "unsupported_address";
		return -EINVAL;
	}
	out->pn_client = d.pd_src;
	out->pn_dest = d.pd_dst;
	return 0;
}

static void proxy_in_input(struct mk_conn *c);
static void proxy_in_timeout(struct mk_conn *c);

/* While the header is read: its bytes, or the time running out. */
static const struct mk_conn_ops proxy_in_ops = {
	.h_client_input = proxy_in_input,
	.h_timeout = proxy_in_timeout,
};

static void proxy_in_refuse(struct mk_conn *c, const char *reason)
{
	char peer[80];

	mk_log_limited(MK_LOG_PROXY, LOG_WARNING, "proxy_refused listener=%s peer=%s reason=%s",
		       c->c_cfg->lc_name, mk_sockaddr_str(&c->c_client, peer, sizeof(peer)),
		       reason);
	mk_metrics_add(c->c_listener->l_index, MK_M_PROXY_REFUSED, 1);
	mk_conn_end(c, "error:proxy_%s", reason);
}

/**
 * mk_proxy_in_start() - first stage of an accept_proxy listener: refuse a
 * peer outside trusted_proxies, otherwise wait proxy_timeout for its header
 * @c: the connection, just accepted
 *
 * Return: 0 (a refusal ends @c, it is not an error of the setup).
 */
int mk_proxy_in_start(struct mk_conn *c)
{
	if (!mk_cidrs_match(&c->c_cfg->lc_trusted_proxies, (const struct sockaddr *)&c->c_client)) {
		proxy_in_refuse(c, "untrusted");
		return 0;
	}
	mk_conn_set_state(c, MK_CS_PROXY);
	c->c_ops = &proxy_in_ops;
	c->c_deadline_ms = mk_now_ms() + c->c_cfg->lc_proxy_timeout_ms;
	c->c_recv_limit = PP2_FIXED_LEN;
	mk_conn_recv_client(c);
	return 0;
}

/* The header is whole and valid: the real endpoints, then the next stage. */
static void proxy_in_apply(struct mk_conn *c, const struct mk_proxy_in *pn)
{
	if (!pn->pn_local) {
		c->c_client = pn->pn_client;
		c->c_proxy_dst = malloc(sizeof(*c->c_proxy_dst));
		if (!c->c_proxy_dst) {
			mk_conn_end(c, "error:no_memory");
			return;
		}
		*c->c_proxy_dst = pn->pn_dest;
	}
	mk_buf_reset(&c->c_cin);
	c->c_recv_limit = 0;
	if (mk_conn_begin(c))
		mk_conn_end(c, "error:setup");
}

/* Bytes of the header arrived in c->c_cin. */
static void proxy_in_input(struct mk_conn *c)
{
	const uint8_t *buf = mk_buf_head(&c->c_cin);
	size_t len = mk_buf_used(&c->c_cin);
	struct mk_proxy_in pn;
	const char *reason;
	ssize_t want;

	want = mk_proxy_v2_wanted(buf, len, MK_PROXY_IN_MAX);
	if (want < 0) {
		proxy_in_refuse(c, want == -EMSGSIZE ? "too_long" : "not_proxy_v2");
		return;
	}
	if (want > 0) {
		c->c_recv_limit = (size_t)want;
		mk_conn_recv_client(c);
		return;
	}
	if (mk_proxy_in_parse(buf, len, &pn, &reason)) {
		proxy_in_refuse(c, reason);
		return;
	}
	proxy_in_apply(c, &pn);
}

/* The header did not come within proxy_timeout. */
static void proxy_in_timeout(struct mk_conn *c)
{
	proxy_in_refuse(c, "timeout");
}
