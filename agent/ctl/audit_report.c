// SPDX-License-Identifier: GPL-2.0
/*
 * The audit's findings and its two outputs: a table for people (one line
 * per service endpoint, then the findings, then a summary line) and JSON
 * for monitoring, whose keys mailktlsctl(8) documents and keeps stable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

static const char *const level_name[] = {
	[AUDIT_MUST] = "must",
	[AUDIT_SHOULD] = "should",
	[AUDIT_NOTE] = "note",
};

/**
 * audit_add() - record a finding.
 * @fs: the list (a service's or the domain's)
 * @id: stable identifier, listed in mailktlsctl(8)
 * @level: AUDIT_MUST / AUDIT_SHOULD for failed requirements, AUDIT_NOTE
 * @section: the RFC 8314 section
 * @fmt: the detail, printf style; bytes outside printable ASCII become '?'
 */
void audit_add(struct audit_findings *fs, const char *id, enum audit_level level,
	       const char *section, const char *fmt, ...)
{
	struct audit_finding *f;
	va_list ap;

	if (fs->fs_count == AUDIT_FINDINGS_MAX) {
		fs->fs_dropped++;
		return;
	}
	f = &fs->fs_list[fs->fs_count++];
	f->af_id = id;
	f->af_level = level;
	f->af_section = section;
	va_start(ap, fmt);
	vsnprintf(f->af_detail, sizeof(f->af_detail), fmt, ap);
	va_end(ap);
	for (char *p = f->af_detail; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
}

static void count(const struct audit_findings *fs, unsigned int n[3])
{
	for (unsigned int i = 0; i < fs->fs_count; i++)
		n[fs->fs_list[i].af_level]++;
}

static void count_all(const struct audit_run *r, unsigned int n[3])
{
	n[0] = n[1] = n[2] = 0;
	count(&r->ar_fs, n);
	for (unsigned int i = 0; i < r->ar_ntargets; i++)
		count(&r->ar_targets[i].at_fs, n);
}

/**
 * audit_exit_code() - 1 when any MUST failed, else 0; 3 when no DNS lookup
 * answered at all, so that nothing was checked.
 * Return: the exit status of `mailktlsctl audit`.
 */
int audit_exit_code(const struct audit_run *r)
{
	unsigned int n[3];

	if (r->ar_no_dns)
		return 3;
	count_all(r, n);
	return n[AUDIT_MUST] ? 1 : 0;
}

static const char *result_name(const struct audit_run *r)
{
	switch (audit_exit_code(r)) {
	case 0:
		return "pass";
	case 1:
		return "fail";
	}
	return "error";
}

/* "fail" (a MUST), "warn" (a SHOULD), "pass", or "absent" for a guess that found nothing. */
static const char *target_status(const struct audit_target *t)
{
	unsigned int n[3] = { 0 };

	count(&t->at_fs, n);
	if (n[AUDIT_MUST])
		return "fail";
	if (!t->at_from_srv && !t->at_tls_ok)
		return "absent";
	if (n[AUDIT_SHOULD])
		return "warn";
	return "pass";
}

static void print_findings(const char *who, const struct audit_findings *fs)
{
	for (unsigned int i = 0; i < fs->fs_count; i++) {
		const struct audit_finding *f = &fs->fs_list[i];

		printf("  %-6s §%-4s %-20s %s: %s\n", level_name[f->af_level], f->af_section,
		       f->af_id, who, f->af_detail);
	}
	if (fs->fs_dropped)
		printf("  note   -     -                    %s: %u more findings not kept\n", who,
		       fs->fs_dropped);
}

/**
 * audit_print_table() - the report for people, on stdout.
 * @r: the finished run
 */
void audit_print_table(const struct audit_run *r)
{
	unsigned int n[3];
	char where[AUDIT_NAME_MAX + 8];

	printf("%-12s %-34s %-8s %-6s %-7s %-22s %-11s %-8s %s\n", "SERVICE", "TARGET:PORT",
	       "TLS", "STATUS", "VERSION", "CIPHER", "DNSSEC", "TLSA", "GROUP");
	for (unsigned int i = 0; i < r->ar_ntargets; i++) {
		const struct audit_target *t = &r->ar_targets[i];

		snprintf(where, sizeof(where), "%s:%u", t->at_srv.sr_target, t->at_srv.sr_port);
		printf("%-12s %-34s %-8s %-6s %-7s %-22s %-11s %-8s %s%s\n", t->at_def->sd_name,
		       where, t->at_def->sd_implicit ? "implicit" : "starttls", target_status(t),
		       t->at_version[0] ? t->at_version : "-",
		       t->at_cipher[0] ? t->at_cipher : "-",
		       t->at_from_srv ? audit_sec_name(t->at_srv_sec) : "no-srv",
		       t->at_tlsa_state ? t->at_tlsa_state : "-",
		       t->at_group[0] ? t->at_group : "-", t->at_pq ? " (pq)" : "");
	}
	printf("findings:\n");
	print_findings(r->ar_domain, &r->ar_fs);
	for (unsigned int i = 0; i < r->ar_ntargets; i++) {
		const struct audit_target *t = &r->ar_targets[i];

		snprintf(where, sizeof(where), "%s %s:%u", t->at_def->sd_name, t->at_srv.sr_target,
			 t->at_srv.sr_port);
		print_findings(where, &t->at_fs);
	}
	count_all(r, n);
	printf("summary: %s: %u endpoints, %u must failed, %u should failed, %u notes: %s\n",
	       r->ar_domain, r->ar_ntargets, n[AUDIT_MUST], n[AUDIT_SHOULD], n[AUDIT_NOTE],
	       r->ar_no_dns ? "ERROR (no DNS answer)" : n[AUDIT_MUST] ? "FAIL" : "PASS");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_kv(const char *k, const char *v, bool comma)
{
	printf("\"%s\":", k);
	json_str(v);
	if (comma)
		putchar(',');
}

static void json_findings(const struct audit_findings *fs)
{
	printf("\"findings\":[");
	for (unsigned int i = 0; i < fs->fs_count; i++) {
		const struct audit_finding *f = &fs->fs_list[i];

		printf("%s{", i ? "," : "");
		json_kv("id", f->af_id, true);
		json_kv("level", level_name[f->af_level], true);
		json_kv("section", f->af_section, true);
		json_kv("detail", f->af_detail, false);
		putchar('}');
	}
	putchar(']');
}

static void json_target(const struct audit_target *t)
{
	putchar('{');
	json_kv("service", t->at_def->sd_name, true);
	json_kv("tls", t->at_def->sd_implicit ? "implicit" : "starttls", true);
	json_kv("source", t->at_from_srv ? "srv" : "well-known", true);
	json_kv("target", t->at_srv.sr_target, true);
	printf("\"port\":%u,\"priority\":%u,\"weight\":%u,", t->at_srv.sr_port,
	       t->at_srv.sr_prio, t->at_srv.sr_weight);
	json_kv("srv_dnssec", t->at_from_srv ? audit_sec_name(t->at_srv_sec) : "none", true);
	json_kv("address_dnssec", audit_sec_name(t->at_addr_sec), true);
	json_kv("address", t->at_addr, true);
	json_kv("status", target_status(t), true);
	json_kv("tls_version", t->at_version, true);
	json_kv("cipher", t->at_cipher, true);
	json_kv("group", t->at_group, true);
	printf("\"pq_hybrid\":%s,", t->at_pq ? "true" : "false");
	json_kv("cert_not_after", t->at_not_after, true);
	json_kv("tlsa", t->at_tlsa_state ? t->at_tlsa_state : "none", true);
	json_kv("tlsa_dnssec", audit_sec_name(t->at_tlsa_sec), true);
	json_findings(&t->at_fs);
	putchar('}');
}

/**
 * audit_print_json() - the report as one JSON object on stdout.
 * @r: the finished run
 */
void audit_print_json(const struct audit_run *r)
{
	unsigned int n[3];

	count_all(r, n);
	putchar('{');
	json_kv("domain", r->ar_domain, true);
	json_kv("resolver", r->ar_resolver ? r->ar_resolver : "resolv.conf", true);
	printf("\"dnssec_validating\":%s,", r->ar_validating ? "true" : "false");
	printf("\"mx\":[");
	for (unsigned int i = 0; i < r->ar_nmx; i++) {
		if (i)
			putchar(',');
		json_str(r->ar_mx[i]);
	}
	printf("],");
	json_kv("mx_dnssec", audit_sec_name(r->ar_mx_sec), true);
	json_findings(&r->ar_fs);
	printf(",\"services\":[");
	for (unsigned int i = 0; i < r->ar_ntargets; i++) {
		if (i)
			putchar(',');
		json_target(&r->ar_targets[i]);
	}
	printf("],\"summary\":{\"endpoints\":%u,\"must_failed\":%u,\"should_failed\":%u,"
	       "\"notes\":%u,\"result\":\"%s\",\"exit\":%d}}\n",
	       r->ar_ntargets, n[AUDIT_MUST], n[AUDIT_SHOULD], n[AUDIT_NOTE], result_name(r),
	       audit_exit_code(r));
}
