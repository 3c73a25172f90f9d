// SPDX-License-Identifier: GPL-2.0
/*
 * mailktlsctl audit DOMAIN: what the users' mail clients of DOMAIN find.
 *
 * RFC 6186 SRV records of the six services (and MX), their DNSSEC state,
 * then every advertised endpoint (or the well-known ports of the names the
 * SRV records give, for a service with no SRV record at all) probed by
 * audit_probe(). One overall deadline (--timeout) bounds the whole run;
 * each connection gets at most a quarter of it, so one silent server
 * cannot hide the others.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "clock.h"

#define AUDIT_TIMEOUT_DEFAULT_S 60
#define AUDIT_TIMEOUT_MAX_S 3600
#define AUDIT_ENDPOINTS_MAX 64
#define AUDIT_GUESS_NAMES 4

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define RR_SRV 33
#define RR_TLSA 52

const struct audit_svc_def audit_svc_defs[6] = {
	{ "submissions", "_submissions._tcp", AUDIT_SMTP, true, 465 },
	{ "submission", "_submission._tcp", AUDIT_SMTP, false, 587 },
	{ "imaps", "_imaps._tcp", AUDIT_IMAP, true, 993 },
	{ "imap", "_imap._tcp", AUDIT_IMAP, false, 143 },
	{ "pop3s", "_pop3s._tcp", AUDIT_POP3, true, 995 },
	{ "pop3", "_pop3._tcp", AUDIT_POP3, false, 110 },
};

/* What the SRV lookup of one service gave. */
struct audit_svc_srv {
	bool ss_answered;	/* the lookup worked (records or not) */
	bool ss_dot;		/* "." only: explicitly not offered */
	enum audit_sec ss_sec;
	unsigned int ss_count;
	struct audit_srv ss_list[AUDIT_TARGETS_MAX];
};

struct audit_ctx {
	struct audit_run ac_run;
	struct audit_dns *ac_dns;
	int64_t ac_deadline;
	int64_t ac_step;
	struct audit_svc_srv ac_srv[6];
	struct audit_target ac_targets[AUDIT_ENDPOINTS_MAX];
};

static int usage(void)
{
	fprintf(stderr, "usage: mailktlsctl audit DOMAIN [--resolver ADDR[:PORT]] "
			"[--trust-anchor FILE] [--json] [--timeout S]\n");
	return 2;
}

/* A host name in presentation form, made absolute; letters, digits, '-', '_', '.'. */
static int domain_arg(const char *in, char *out, size_t outlen)
{
	size_t l = strlen(in);

	if (!l || l > 253 || in[0] == '.' || strstr(in, ".."))
		return -EINVAL;
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)in[i]) && !strchr("-_.", in[i]))
			return -EINVAL;
	snprintf(out, outlen, "%s%s", in, in[l - 1] == '.' ? "" : ".");
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

static int cmp_srv(const void *a, const void *b)
{
	const struct audit_srv *x = a, *y = b;

	if (x->sr_prio != y->sr_prio)
		return x->sr_prio < y->sr_prio ? -1 : 1;
	return x->sr_weight > y->sr_weight ? -1 : x->sr_weight < y->sr_weight;
}

static void note_sec(struct audit_findings *fs, enum audit_sec sec, const char *what,
		     const char *name, const char *why)
{
	if (sec == AUDIT_SEC_BOGUS)
		audit_add(fs, "dnssec-bogus", AUDIT_MUST, "4.5",
			  "%s %s fails DNSSEC validation (%s): validating clients get SERVFAIL",
			  what, name, why);
	else if (sec == AUDIT_SEC_INSECURE)
		audit_add(fs, "dnssec-unsigned", AUDIT_SHOULD, "4.5", "%s %s is not DNSSEC-signed",
			  what, name);
}

/* The SRV records of one service, sorted as RFC 2782 clients try them. */
static void lookup_srv(struct audit_ctx *a, unsigned int i)
{
	struct audit_svc_srv *s = &a->ac_srv[i];
	struct audit_findings *fs = &a->ac_run.ar_fs;
	char name[AUDIT_NAME_MAX + 32];
	struct audit_srv *all;
	struct audit_rr_set rs;
	unsigned int bad = 0, n = 0;
	int err;

	snprintf(name, sizeof(name), "%s.%s", audit_svc_defs[i].sd_srv, a->ac_run.ar_domain);
	err = audit_dns_query(a->ac_dns, name, RR_SRV, a->ac_deadline, &rs);
	if (err || rs.rs_sec == AUDIT_SEC_ERROR) {
		audit_add(fs, "srv-lookup-failed", AUDIT_SHOULD, "4.5", "%s: %s", name, rs.rs_why);
		s->ss_sec = AUDIT_SEC_ERROR;
		goto out;
	}
	s->ss_sec = rs.rs_sec;
	if (rs.rs_sec == AUDIT_SEC_BOGUS) {
		note_sec(fs, rs.rs_sec, "SRV", name, rs.rs_why);
		goto out;
	}
	s->ss_answered = true;
	/* all of them, sorted, so that the best AUDIT_TARGETS_MAX are kept */
	all = calloc(rs.rs_count ? rs.rs_count : 1, sizeof(*all));
	if (!all) {
		audit_add(fs, "srv-lookup-failed", AUDIT_SHOULD, "4.5", "%s: out of memory", name);
		goto out;
	}
	for (unsigned int k = 0; k < rs.rs_count; k++) {
		if (audit_srv_parse(rs.rs_data[k], rs.rs_len[k], &all[n]))
			bad++;
		else
			n++;
	}
	qsort(all, n, sizeof(*all), cmp_srv);
	s->ss_count = n < AUDIT_TARGETS_MAX ? n : AUDIT_TARGETS_MAX;
	memcpy(s->ss_list, all, s->ss_count * sizeof(*all));
	free(all);
	if (bad)
		audit_add(fs, "srv-bad-record", AUDIT_SHOULD, "4.5",
			  "%s: %u records unreadable", name, bad);
	if (rs.rs_count - bad > AUDIT_TARGETS_MAX)
		audit_add(fs, "srv-too-many", AUDIT_NOTE, "4.5",
			  "%s has %u targets; the first %u by priority are checked", name,
			  rs.rs_count - bad, AUDIT_TARGETS_MAX);
	s->ss_dot = s->ss_count == 1 && !strcmp(s->ss_list[0].sr_target, ".");
	if (s->ss_count)
		note_sec(fs, rs.rs_sec, "SRV", name, "");
out:
	audit_rr_set_free(&rs);
}

static int best_prio(const struct audit_svc_srv *s)
{
	if (!s->ss_count || s->ss_dot)
		return -1;
	return s->ss_list[0].sr_prio;
}

/* RFC 8314 §4.5 / §5.1: Implicit TLS advertised, and before STARTTLS. */
static void check_preference(struct audit_ctx *a)
{
	struct audit_findings *fs = &a->ac_run.ar_fs;
	bool any = false, all_answered = true;

	for (unsigned int i = 0; i < 6; i += 2) {
		const struct audit_svc_srv *imp = &a->ac_srv[i], *st = &a->ac_srv[i + 1];
		int pi = best_prio(imp), ps = best_prio(st);

		any |= imp->ss_count || st->ss_count;
		all_answered &= imp->ss_answered && st->ss_answered;
		if (!imp->ss_answered && !st->ss_answered)
			continue;
		if (pi < 0 && ps >= 0)
			audit_add(fs, "srv-missing", AUDIT_SHOULD, "4.5",
				  "_%s._tcp (Implicit TLS) is not advertised, _%s._tcp is",
				  audit_svc_defs[i].sd_name, audit_svc_defs[i + 1].sd_name);
		else if (pi >= 0 && ps >= 0 && ps <= pi)
			audit_add(fs, "srv-prefers-starttls", AUDIT_SHOULD, "4.5",
				  "_%s._tcp priority %d is not after _%s._tcp priority %d: "
				  "Implicit TLS must come first (RFC 6186 as updated by RFC 8314)",
				  audit_svc_defs[i + 1].sd_name, ps, audit_svc_defs[i].sd_name, pi);
		else if (pi >= 0 && st->ss_dot)
			audit_add(fs, "srv-starttls-disabled", AUDIT_NOTE, "4.5",
				  "_%s._tcp is \".\": STARTTLS service not offered",
				  audit_svc_defs[i + 1].sd_name);
	}
	/* failed lookups have findings of their own; "none" needs six answers */
	if (!any && all_answered)
		audit_add(fs, "srv-missing", AUDIT_SHOULD, "4.5",
			  "no SRV records (RFC 6186) for any mail service");
}

static void lookup_mx(struct audit_ctx *a)
{
	struct audit_run *r = &a->ac_run;
	struct audit_rr_set rs;
	uint16_t pref;

	if (audit_dns_query(a->ac_dns, r->ar_domain, RR_MX, a->ac_deadline, &rs) ||
	    rs.rs_sec == AUDIT_SEC_ERROR || rs.rs_sec == AUDIT_SEC_BOGUS) {
		r->ar_mx_sec = rs.rs_sec == AUDIT_SEC_BOGUS ? AUDIT_SEC_BOGUS : AUDIT_SEC_ERROR;
		if (rs.rs_sec == AUDIT_SEC_BOGUS)
			note_sec(&r->ar_fs, rs.rs_sec, "MX", r->ar_domain, rs.rs_why);
		else
			audit_add(&r->ar_fs, "mx-lookup-failed", AUDIT_NOTE, "4.5", "MX %s: %s",
				  r->ar_domain, rs.rs_why);
		goto out;
	}
	r->ar_mx_sec = rs.rs_sec;
	for (unsigned int k = 0; k < rs.rs_count && r->ar_nmx < AUDIT_TARGETS_MAX; k++)
		if (!audit_mx_parse(rs.rs_data[k], rs.rs_len[k], &pref, r->ar_mx[r->ar_nmx],
				    sizeof(r->ar_mx[0])))
			r->ar_nmx++;
	if (!rs.rs_count)
		audit_add(&r->ar_fs, "mx-missing", AUDIT_NOTE, "4.5",
			  "no MX: inbound mail relies on A/AAAA records");
	else
		note_sec(&r->ar_fs, rs.rs_sec, "MX", r->ar_domain, "");
out:
	audit_rr_set_free(&rs);
}

static struct audit_target *new_target(struct audit_ctx *a, unsigned int i)
{
	struct audit_run *r = &a->ac_run;
	struct audit_target *t;

	if (r->ar_ntargets == AUDIT_ENDPOINTS_MAX)
		return NULL;
	t = &a->ac_targets[r->ar_ntargets++];
	memset(t, 0, sizeof(*t));
	t->at_def = &audit_svc_defs[i];
	t->at_srv_sec = a->ac_srv[i].ss_sec;
	return t;
}

/* The endpoints: advertised ones, and well-known ports for services without SRV. */
static void plan_targets(struct audit_ctx *a)
{
	const char *names[AUDIT_GUESS_NAMES];
	unsigned int nn = 0;

	for (unsigned int i = 0; i < 6; i++)
		for (unsigned int k = 0; k < a->ac_srv[i].ss_count; k++) {
			const char *n = a->ac_srv[i].ss_list[k].sr_target;
			bool dup = !strcmp(n, ".");

			for (unsigned int j = 0; j < nn && !dup; j++)
				dup = !strcmp(names[j], n);
			if (!dup && nn < AUDIT_GUESS_NAMES)
				names[nn++] = n;
		}
	if (!nn)
		names[nn++] = a->ac_run.ar_domain;
	for (unsigned int i = 0; i < 6; i++) {
		struct audit_svc_srv *s = &a->ac_srv[i];
		struct audit_target *t;

		for (unsigned int k = 0; k < s->ss_count && !s->ss_dot; k++) {
			t = new_target(a, i);
			if (!t)
				return;
			t->at_srv = s->ss_list[k];
			t->at_from_srv = true;
		}
		if (s->ss_count)
			continue;
		for (unsigned int j = 0; j < nn; j++) {
			t = new_target(a, i);
			if (!t)
				return;
			snprintf(t->at_srv.sr_target, sizeof(t->at_srv.sr_target), "%s", names[j]);
			t->at_srv.sr_port = audit_svc_defs[i].sd_port;
		}
	}
}

/* The first A (else AAAA) address of the target, with its DNSSEC state. */
static int resolve(struct audit_ctx *a, struct audit_target *t, struct sockaddr_storage *ss,
		   socklen_t *sl)
{
	static const int types[2] = { RR_A, RR_AAAA };

	for (unsigned int i = 0; i < 2; i++) {
		struct audit_rr_set rs;
		int err = audit_dns_query(a->ac_dns, t->at_srv.sr_target, types[i],
					  a->ac_deadline, &rs);
		bool got = false;

		if (!err && rs.rs_sec == AUDIT_SEC_BOGUS)
			note_sec(&t->at_fs, rs.rs_sec, "address of", t->at_srv.sr_target,
				 rs.rs_why);
		for (unsigned int k = 0; !err && !got && k < rs.rs_count; k++) {
			if (types[i] == RR_A && rs.rs_len[k] == 4) {
				struct sockaddr_in *sin = (struct sockaddr_in *)ss;

				sin->sin_family = AF_INET;
				memcpy(&sin->sin_addr, rs.rs_data[k], 4);
				sin->sin_port = htons(t->at_srv.sr_port);
				*sl = sizeof(*sin);
				got = true;
			} else if (types[i] == RR_AAAA && rs.rs_len[k] == 16) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, rs.rs_data[k], 16);
				sin6->sin6_port = htons(t->at_srv.sr_port);
				*sl = sizeof(*sin6);
				got = true;
			}
		}
		if (got) {
			t->at_addr_sec = rs.rs_sec;
			if (t->at_from_srv && rs.rs_sec == AUDIT_SEC_INSECURE &&
			    t->at_srv_sec == AUDIT_SEC_SECURE)
				note_sec(&t->at_fs, rs.rs_sec, "address of", t->at_srv.sr_target,
					 "");
			inet_ntop(ss->ss_family, ss->ss_family == AF_INET ?
				  (void *)&((struct sockaddr_in *)ss)->sin_addr :
				  (void *)&((struct sockaddr_in6 *)ss)->sin6_addr, t->at_addr,
				  sizeof(t->at_addr));
		}
		audit_rr_set_free(&rs);
		if (got)
			return 0;
	}
	return -ENOENT;
}

/* TLSA records of _PORT._tcp.TARGET (RFC 6698, RFC 7673), with RFC 8314 §4.5 rules. */
static unsigned int lookup_tlsa(struct audit_ctx *a, struct audit_target *t,
				struct audit_tlsa *out)
{
	char name[AUDIT_NAME_MAX + 16];
	struct audit_rr_set rs;
	unsigned int n = 0;

	t->at_tlsa_state = "none";
	snprintf(name, sizeof(name), "_%u._tcp.%s", t->at_srv.sr_port, t->at_srv.sr_target);
	if (audit_dns_query(a->ac_dns, name, RR_TLSA, a->ac_deadline, &rs) ||
	    rs.rs_sec == AUDIT_SEC_ERROR) {
		t->at_tlsa_state = "error";
		t->at_tlsa_sec = AUDIT_SEC_ERROR;
		audit_add(&t->at_fs, "tlsa-lookup-failed", AUDIT_SHOULD, "4.5", "TLSA %s: %s",
			  name, rs.rs_why);
		goto out;
	}
	t->at_tlsa_sec = rs.rs_sec;
	if (rs.rs_sec == AUDIT_SEC_BOGUS) {
		t->at_tlsa_state = "bogus";
		note_sec(&t->at_fs, rs.rs_sec, "TLSA", name, rs.rs_why);
		goto out;
	}
	for (unsigned int k = 0; k < rs.rs_count && n < AUDIT_TLSA_MAX; k++)
		if (!audit_tlsa_parse(rs.rs_data[k], rs.rs_len[k], &out[n]))
			n++;
	if (n && rs.rs_sec != AUDIT_SEC_SECURE) {
		t->at_tlsa_state = "unsigned";
		audit_add(&t->at_fs, "tlsa-unsigned", AUDIT_MUST, "4.5",
			  "TLSA %s is published without DNSSEC (%s)", name,
			  audit_sec_name(rs.rs_sec));
	} else if (!n && rs.rs_count) {
		audit_add(&t->at_fs, "tlsa-bad-record", AUDIT_SHOULD, "4.5",
			  "TLSA %s: no usable record", name);
	} else if (!n && t->at_srv_sec == AUDIT_SEC_SECURE && t->at_from_srv) {
		audit_add(&t->at_fs, "tlsa-missing", AUDIT_NOTE, "4.5",
			  "no TLSA at %s although the zone is signed", name);
	}
out:
	audit_rr_set_free(&rs);
	return n;
}

static void check_target(struct audit_ctx *a, struct audit_target *t)
{
	struct audit_tlsa tlsa[AUDIT_TLSA_MAX];
	struct audit_probe_opts po = {
		.po_domain = a->ac_run.ar_domain,
		.po_deadline_ms = a->ac_deadline,
		.po_step_ms = a->ac_step,
		.po_tlsa = tlsa,
	};
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = 0;

	if ((int64_t)mk_now_ms() >= a->ac_deadline) {
		audit_add(&t->at_fs, "timeout", t->at_from_srv ? AUDIT_MUST : AUDIT_NOTE, "4",
			  "not checked: the overall --timeout ran out");
		return;
	}
	if (resolve(a, t, &ss, &sl)) {
		audit_add(&t->at_fs, "no-address", t->at_from_srv ? AUDIT_MUST : AUDIT_NOTE, "4.5",
			  "%s has no usable A/AAAA record", t->at_srv.sr_target);
		return;
	}
	po.po_tlsa_count = lookup_tlsa(a, t, tlsa);
	audit_probe(t, (struct sockaddr *)&ss, sl, &po);
	if (!t->at_from_srv && !t->at_connected)
		t->at_tlsa_state = NULL;
}

/* RFC 8314 §4.6: all servers of one service speak the same (or newer) TLS. */
static void check_versions(struct audit_ctx *a)
{
	for (unsigned int i = 0; i < a->ac_run.ar_ntargets; i++) {
		struct audit_target *t = &a->ac_targets[i];

		for (unsigned int k = 0; k < i; k++) {
			const struct audit_target *u = &a->ac_targets[k];

			if (u->at_def != t->at_def || !u->at_tls_ok || !t->at_tls_ok ||
			    !strcmp(u->at_version, t->at_version))
				continue;
			audit_add(&t->at_fs, "tls-version-differs", AUDIT_SHOULD, "4.6",
				  "%s here, %s at %s:%u", t->at_version, u->at_version,
				  u->at_srv.sr_target, u->at_srv.sr_port);
			break;
		}
	}
}

/* Not one SRV or MX lookup answered (resolver down or mute): nothing to audit. */
static bool no_dns(const struct audit_ctx *a)
{
	for (unsigned int i = 0; i < 6; i++)
		if (a->ac_srv[i].ss_sec != AUDIT_SEC_ERROR)
			return false;
	return a->ac_run.ar_mx_sec == AUDIT_SEC_ERROR;
}

static int parse_opts(int argc, char **argv, struct audit_dns_opts *o, bool *json, long *tmo,
		      const char **domain)
{
	static const struct option opts[] = {
		{ "resolver", required_argument, NULL, 'r' },
		{ "trust-anchor", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	/* 0, not 1: glibc then forgets main()'s "+" (stop at the first operand) */
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r') {
			o->do_resolver = optarg;
		} else if (c == 'a') {
			o->do_anchor = optarg;
		} else if (c == 'j') {
			*json = true;
		} else if (c == 't') {
			*tmo = strtol(optarg, &end, 10);
			if (*end || end == optarg || *tmo < 1 || *tmo > AUDIT_TIMEOUT_MAX_S)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	if (optind != argc - 1)
		return -EINVAL;
	*domain = argv[optind];
	return 0;
}

/**
 * audit_main() - `mailktlsctl audit ...`; argv[0] is "audit".
 * Return: 0 when no MUST failed, 1 when one did, 2 for a usage error,
 * 3 when the audit could not run (resolver or trust anchor unusable, or
 * not one DNS lookup answered).
 */
int audit_main(int argc, char **argv)
{
	struct audit_dns_opts o = { 0 };
	static struct audit_ctx a;
	char domain[AUDIT_NAME_MAX + 1], err[AUDIT_DETAIL_MAX];
	const char *arg;
	long tmo = AUDIT_TIMEOUT_DEFAULT_S;
	bool json = false;
	int rc;

	if (parse_opts(argc, argv, &o, &json, &tmo, &arg) || domain_arg(arg, domain,
									sizeof(domain)))
		return usage();
	memset(&a, 0, sizeof(a));
	a.ac_deadline = (int64_t)mk_now_ms() + tmo * 1000;
	a.ac_step = tmo * 1000 / 4 > 1000 ? tmo * 1000 / 4 : 1000;
	if (audit_dns_open(&o, &a.ac_dns, err, sizeof(err))) {
		fprintf(stderr, "mailktlsctl: audit: DNS: %s\n", err);
		return 3;
	}
	a.ac_run.ar_domain = domain;
	a.ac_run.ar_resolver = o.do_resolver;
	a.ac_run.ar_validating = audit_dns_validating(a.ac_dns);
	a.ac_run.ar_targets = a.ac_targets;
	if (!a.ac_run.ar_validating)
		audit_add(&a.ac_run.ar_fs, "dnssec-unvalidated", AUDIT_NOTE, "4.5",
			  "no trust anchor: DNSSEC state not checked (--trust-anchor)");
	for (unsigned int i = 0; i < 6; i++)
		lookup_srv(&a, i);
	check_preference(&a);
	lookup_mx(&a);
	a.ac_run.ar_no_dns = no_dns(&a);
	if (!a.ac_run.ar_no_dns) {
		plan_targets(&a);
		for (unsigned int i = 0; i < a.ac_run.ar_ntargets; i++)
			check_target(&a, &a.ac_targets[i]);
		check_versions(&a);
	} else {
		fprintf(stderr, "mailktlsctl: audit: no DNS answer for %s: nothing checked\n",
			domain);
	}
	if (json)
		audit_print_json(&a.ac_run);
	else
		audit_print_table(&a.ac_run);
	rc = audit_exit_code(&a.ac_run);
	audit_dns_close(a.ac_dns);
	return rc;
}
