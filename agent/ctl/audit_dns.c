// SPDX-License-Identifier: GPL-2.0
/*
 * DNS for the audit, through libunbound.
 *
 * Why libunbound (and not ldns, or the libc resolver): the audit must say
 * for every record whether it is DNSSEC-signed and valid, as a validating
 * mail client would see it. libunbound is a full validating resolver in a
 * library: it takes a trust anchor file (ub_ctx_add_ta_file), follows
 * CNAMEs with loop limits, retries truncated UDP answers over TCP, and
 * reports secure/insecure/bogus per answer. ldns would leave the chain of
 * trust, CNAME chasing and TC handling to us. Its asynchronous interface
 * (ub_resolve_async + ub_fd) lets the audit's overall deadline hold for
 * every query: a silent or slow server costs the remaining time, no more.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <unbound.h>

#include "audit.h"
#include "clock.h"

#define AUDIT_ROOT_ANCHOR "/usr/share/dns/root.key"

struct audit_dns {
	struct ub_ctx *dn_ctx;
	bool dn_validating;
};

struct audit_dns_wait {
	bool dw_done;
	int dw_err;
	struct ub_result *dw_res;
};

/**
 * audit_sec_name() - the DNSSEC state as the table and the JSON spell it.
 * @s: the state
 *
 * Return: "secure", "insecure", "bogus", "error" or "unvalidated".
 */
const char *audit_sec_name(enum audit_sec s)
{
	switch (s) {
	case AUDIT_SEC_SECURE:
		return "secure";
	case AUDIT_SEC_INSECURE:
		return "insecure";
	case AUDIT_SEC_BOGUS:
		return "bogus";
	case AUDIT_SEC_ERROR:
		return "error";
	case AUDIT_SEC_NONE:
		break;
	}
	return "unvalidated";
}

/* "192.0.2.1:5353", "[2001:db8::1]:53" or a bare address → libunbound's "ADDR@PORT". */
static int fwd_spec(const char *in, char *out, size_t outlen)
{
	const char *colon = strrchr(in, ':');
	int n;

	if (in[0] == '[') {
		const char *end = strchr(in, ']');

		if (!end)
			return -EINVAL;
		if (end[1] == ':')
			n = snprintf(out, outlen, "%.*s@%s", (int)(end - in - 1), in + 1, end + 2);
		else if (!end[1])
			n = snprintf(out, outlen, "%.*s", (int)(end - in - 1), in + 1);
		else
			return -EINVAL;
	} else if (colon && strchr(in, ':') == colon) {
		n = snprintf(out, outlen, "%.*s@%s", (int)(colon - in), in, colon + 1);
	} else {
		n = snprintf(out, outlen, "%s", in);
	}
	return n > 0 && (size_t)n < outlen ? 0 : -EINVAL;
}

/**
 * audit_dns_open() - a libunbound context for the audit.
 * @o: resolver to forward to (or /etc/resolv.conf's) and trust anchor file
 *     (or Debian's root anchor from dns-root-data when installed)
 * @out: the context
 * @err: a message when it fails
 * @errlen: its size
 *
 * Return: 0, or -EINVAL with @err set.
 */
int audit_dns_open(const struct audit_dns_opts *o, struct audit_dns **out, char *err,
		   size_t errlen)
{
	struct audit_dns *d = calloc(1, sizeof(*d));
	char fwd[128];
	int rc;

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->dn_ctx = ub_ctx_create();
	if (!d->dn_ctx) {
		snprintf(err, errlen, "ub_ctx_create failed");
		goto out_free;
	}
	/* threads, not a forked process: ub_fd() then serves the deadline */
	rc = ub_ctx_async(d->dn_ctx, 1);
	/* forwarders on loopback are what a test bed and a local validator use */
	if (!rc)
		rc = ub_ctx_set_option(d->dn_ctx, "do-not-query-localhost:", "no");
	if (rc)
		goto out_ub;
	if (o->do_resolver) {
		if (fwd_spec(o->do_resolver, fwd, sizeof(fwd))) {
			snprintf(err, errlen, "%s: not ADDR[:PORT]", o->do_resolver);
			goto out_ctx;
		}
		rc = ub_ctx_set_fwd(d->dn_ctx, fwd);
	} else {
		rc = ub_ctx_resolvconf(d->dn_ctx, NULL);
	}
	if (rc)
		goto out_ub;
	if (o->do_anchor) {
		rc = ub_ctx_add_ta_file(d->dn_ctx, o->do_anchor);
		if (rc)
			goto out_ub;
		d->dn_validating = true;
	} else if (!access(AUDIT_ROOT_ANCHOR, R_OK)) {
		rc = ub_ctx_add_ta_file(d->dn_ctx, AUDIT_ROOT_ANCHOR);
		d->dn_validating = !rc;
	}
	*out = d;
	return 0;

out_ub:
	snprintf(err, errlen, "%s", ub_strerror(rc));
out_ctx:
	ub_ctx_delete(d->dn_ctx);
out_free:
	free(d);
	return -EINVAL;
}

static void dns_done(void *arg, int err, struct ub_result *res)
{
	struct audit_dns_wait *w = arg;

	w->dw_done = true;
	w->dw_err = err;
	w->dw_res = res;
}

static void fill_set(const struct audit_dns *d, struct ub_result *res, struct audit_rr_set *rs)
{
	unsigned int n = 0;

	rs->rs_priv = res;
	rs->rs_rcode = res->rcode;
	rs->rs_nxdomain = res->nxdomain;
	if (res->bogus) {
		rs->rs_sec = AUDIT_SEC_BOGUS;
		snprintf(rs->rs_why, sizeof(rs->rs_why), "%s",
			 res->why_bogus ? res->why_bogus : "validation failed");
	} else if (res->rcode != 0 && res->rcode != 3) {
		rs->rs_sec = AUDIT_SEC_ERROR;
		snprintf(rs->rs_why, sizeof(rs->rs_why), "rcode %d%s", res->rcode,
			 res->rcode == 2 ? " (SERVFAIL)" : "");
	} else if (!d->dn_validating) {
		rs->rs_sec = AUDIT_SEC_NONE;
	} else {
		rs->rs_sec = res->secure ? AUDIT_SEC_SECURE : AUDIT_SEC_INSECURE;
	}
	if (res->havedata && rs->rs_sec != AUDIT_SEC_BOGUS)
		while (res->data[n])
			n++;
	rs->rs_count = n;
	rs->rs_data = (const uint8_t **)res->data;
	rs->rs_len = res->len;
}

/**
 * audit_dns_query() - one question, answered before @deadline_ms.
 * @d: the context
 * @name: the owner name
 * @rrtype: 33 SRV, 15 MX, 1 A, 28 AAAA, 52 TLSA
 * @deadline_ms: mk_now_ms() value after which the query is cancelled
 * @rs: the answer; release with audit_rr_set_free()
 *
 * Return: 0 with @rs filled (its rs_sec tells errors in the answer), or
 * -ETIMEDOUT, or -EIO when libunbound itself failed (@rs->rs_why says why).
 */
int audit_dns_query(struct audit_dns *d, const char *name, int rrtype, int64_t deadline_ms,
		    struct audit_rr_set *rs)
{
	struct audit_dns_wait w = { 0 };
	struct pollfd pfd = { .fd = ub_fd(d->dn_ctx), .events = POLLIN };
	int id, rc;

	memset(rs, 0, sizeof(*rs));
	rc = ub_resolve_async(d->dn_ctx, name, rrtype, 1, &w, dns_done, &id);
	if (rc) {
		snprintf(rs->rs_why, sizeof(rs->rs_why), "%s", ub_strerror(rc));
		return -EIO;
	}
	while (!w.dw_done) {
		int64_t left = deadline_ms - (int64_t)mk_now_ms();

		if (left <= 0) {
			ub_cancel(d->dn_ctx, id);
			snprintf(rs->rs_why, sizeof(rs->rs_why), "no answer within the timeout");
			return -ETIMEDOUT;
		}
		rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc > 0 && ub_process(d->dn_ctx)) {
			snprintf(rs->rs_why, sizeof(rs->rs_why), "ub_process failed");
			return -EIO;
		}
	}
	if (w.dw_err || !w.dw_res) {
		snprintf(rs->rs_why, sizeof(rs->rs_why), "%s", ub_strerror(w.dw_err));
		ub_resolve_free(w.dw_res);
		return -EIO;
	}
	fill_set(d, w.dw_res, rs);
	return 0;
}

/**
 * audit_rr_set_free() - release an answer of audit_dns_query(); safe twice.
 * @rs: the answer
 */
void audit_rr_set_free(struct audit_rr_set *rs)
{
	ub_resolve_free(rs->rs_priv);
	rs->rs_priv = NULL;
	rs->rs_count = 0;
}

/**
 * audit_dns_validating() - is a trust anchor loaded?
 * @d: the context
 *
 * Return: true when answers can be secure or bogus, false when every
 * answer is unvalidated.
 */
bool audit_dns_validating(const struct audit_dns *d)
{
	return d->dn_validating;
}

/**
 * audit_dns_close() - end the libunbound context (and its thread).
 * @d: the context, or NULL
 */
void audit_dns_close(struct audit_dns *d)
{
	if (!d)
		return;
	ub_ctx_delete(d->dn_ctx);
	free(d);
}
