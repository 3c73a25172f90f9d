/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mailktlsctl audit: check a mail provider against RFC 8314 from the
 * outside, as its users' mail clients see it.
 *
 * audit.c drives the run; audit_dns.c asks libunbound (DNSSEC-validating)
 * for SRV, MX, A/AAAA and TLSA; audit_probe.c connects, speaks the pre-TLS
 * dialogues and the TLS handshakes; audit_parse.c reads DNS rdata and
 * server lines (pure functions, fuzzed); audit_report.c keeps the findings
 * and prints the table or JSON.
 */
#ifndef MAILKTLS_AUDIT_H
#define MAILKTLS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define AUDIT_NAME_MAX 256	 /* presentation form of a domain name, with NUL */
#define AUDIT_TARGETS_MAX 8	 /* SRV targets checked per service */
#define AUDIT_ADDRS_MAX 4	 /* addresses tried per target */
#define AUDIT_TLSA_MAX 8	 /* TLSA records compared per port */
#define AUDIT_TLSA_DATA_MAX 64	 /* SHA2-512; full certificates are hashed first */
#define AUDIT_FINDINGS_MAX 24	 /* per service */
#define AUDIT_DETAIL_MAX 160
#define AUDIT_LINE_MAX 2048	 /* one server line; longer is a finding */
#define AUDIT_RESPONSE_MAX 65536 /* one multi-line response, all lines */
#define AUDIT_RESPONSE_LINES 64	 /* lines of one response */

/* Which of the six RFC 6186 / RFC 8314 services. */
enum audit_proto { AUDIT_IMAP, AUDIT_POP3, AUDIT_SMTP };

struct audit_svc_def {
	const char *sd_name; /* "submissions" */
	const char *sd_srv;  /* "_submissions._tcp" */
	enum audit_proto sd_proto;
	bool sd_implicit;	/* Implicit TLS (RFC 8314 §3) or STARTTLS */
	uint16_t sd_port;	/* the well-known port */
};

extern const struct audit_svc_def audit_svc_defs[6];

/* DNSSEC state of one answer, as libunbound reports it. */
enum audit_sec { AUDIT_SEC_NONE, AUDIT_SEC_SECURE, AUDIT_SEC_INSECURE, AUDIT_SEC_BOGUS,
		 AUDIT_SEC_ERROR };

const char *audit_sec_name(enum audit_sec s);

enum audit_level { AUDIT_MUST, AUDIT_SHOULD, AUDIT_NOTE };

struct audit_finding {
	const char *af_id;	/* stable, e.g. "login-before-tls" */
	enum audit_level af_level;
	const char *af_section; /* RFC 8314 section, e.g. "4.1" */
	char af_detail[AUDIT_DETAIL_MAX];
};

struct audit_findings {
	struct audit_finding fs_list[AUDIT_FINDINGS_MAX];
	unsigned int fs_count;
	unsigned int fs_dropped;
};

void audit_add(struct audit_findings *fs, const char *id, enum audit_level level,
	       const char *section, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* --- parsing (audit_parse.c) ------------------------------------------- */

struct audit_srv {
	uint16_t sr_prio, sr_weight, sr_port;
	char sr_target[AUDIT_NAME_MAX]; /* "." when the service is not offered */
};

struct audit_tlsa {
	uint8_t tl_usage, tl_selector, tl_mtype;
	uint8_t tl_data[AUDIT_TLSA_DATA_MAX];
	size_t tl_len;
	bool tl_full_too_long; /* matching type 0 longer than we keep: hashed */
	uint8_t tl_full_sha256[32];
};

int audit_dname_parse(const uint8_t *p, size_t len, size_t *off, char *out, size_t outlen);
int audit_srv_parse(const uint8_t *rd, size_t len, struct audit_srv *out);
int audit_mx_parse(const uint8_t *rd, size_t len, uint16_t *pref, char *out, size_t outlen);
int audit_tlsa_parse(const uint8_t *rd, size_t len, struct audit_tlsa *out);

/* What the pre-TLS dialogue told us. */
struct audit_caps {
	bool ca_starttls;	/* STARTTLS / STLS offered */
	bool ca_logindisabled;	/* IMAP LOGINDISABLED */
	bool ca_auth;		/* SMTP AUTH / IMAP AUTH= before TLS */
};

/* A server line, classified. */
enum audit_status { AUDIT_ST_MORE, AUDIT_ST_OK, AUDIT_ST_NO, AUDIT_ST_BAD };

int audit_line_take(char *buf, size_t *have, char *line, size_t *len);
enum audit_status audit_line_classify(enum audit_proto proto, const char *tag, const char *line,
				      size_t len);
void audit_caps_scan(enum audit_proto proto, const char *line, size_t len,
		     struct audit_caps *caps);

/* --- DNS (audit_dns.c) ------------------------------------------------- */

struct audit_dns;

struct audit_dns_opts {
	const char *do_resolver; /* ADDR[:PORT] or NULL for /etc/resolv.conf */
	const char *do_anchor;	 /* trust anchor file or NULL */
};

/* One answer: raw rdata of each record and the DNSSEC state. */
struct audit_rr_set {
	enum audit_sec rs_sec;
	int rs_rcode;
	bool rs_nxdomain;
	unsigned int rs_count;
	const uint8_t **rs_data;
	const int *rs_len; /* libunbound's lengths are ints */
	char rs_why[AUDIT_DETAIL_MAX];
	void *rs_priv; /* the ub_result */
};

int audit_dns_open(const struct audit_dns_opts *o, struct audit_dns **out, char *err,
		   size_t errlen);
int audit_dns_query(struct audit_dns *d, const char *name, int rrtype, int64_t deadline_ms,
		    struct audit_rr_set *rs);
void audit_rr_set_free(struct audit_rr_set *rs);
void audit_dns_close(struct audit_dns *d);
bool audit_dns_validating(const struct audit_dns *d);

/* --- probing (audit_probe.c) ------------------------------------------- */

/* One service endpoint to check and what was found there. */
struct audit_target {
	const struct audit_svc_def *at_def;
	struct audit_srv at_srv;
	bool at_from_srv;	/* advertised, or a guess at the well-known port */
	enum audit_sec at_srv_sec;
	enum audit_sec at_addr_sec;
	char at_addr[64];	/* the address that answered, or the last tried */
	/* results */
	bool at_checked, at_connected, at_tls_ok;
	char at_version[16], at_cipher[64], at_group[48];
	bool at_pq;
	char at_not_after[32];
	enum audit_sec at_tlsa_sec;
	const char *at_tlsa_state; /* "match", "mismatch", "none", "unsigned", "error" */
	struct audit_findings at_fs;
};

struct audit_probe_opts {
	const char *po_domain;
	int64_t po_deadline_ms;	 /* the whole audit */
	int64_t po_step_ms;	 /* one connection at most */
	const struct audit_tlsa *po_tlsa;
	unsigned int po_tlsa_count;
};

void audit_probe(struct audit_target *t, const struct sockaddr *sa, unsigned int salen,
		 const struct audit_probe_opts *po);

/* --- report (audit_report.c) ------------------------------------------- */

struct audit_run {
	const char *ar_domain;
	const char *ar_resolver;
	bool ar_validating;
	struct audit_target *ar_targets;
	unsigned int ar_ntargets;
	struct audit_findings ar_fs; /* domain-wide: SRV, MX, DNSSEC */
	char ar_mx[AUDIT_TARGETS_MAX][AUDIT_NAME_MAX];
	unsigned int ar_nmx;
	enum audit_sec ar_mx_sec;
	bool ar_no_dns; /* not one lookup answered: nothing could be checked */
};

int audit_exit_code(const struct audit_run *r);
void audit_print_table(const struct audit_run *r);
void audit_print_json(const struct audit_run *r);

int audit_main(int argc, char **argv);

#endif
