// SPDX-License-Identifier: GPL-2.0
/*
 * The INI parser of mailktlsd.
 *
 * One table (mk_keys[]) describes every key: where it lives, how its value
 * is parsed, what the message says is expected. Listener keys may be given
 * in [defaults] too; a listener's own value wins, whatever the order of the
 * sections in the file, so inheritance is resolved after the whole file is
 * read. Every message names the first problem as "FILE:LINE: message".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "config.h"
#include "mk_addr.h"
#include "proxy_v2.h"

#define MK_CONF_LINE_MAX 4096
#define MK_CONF_SIZE_MAX (1024 * 1024)
#define MK_DURATION_MAX_MS (7u * 24 * 3600 * 1000)	/* fits an unsigned int */

enum key_scope { SCOPE_GLOBAL, SCOPE_LISTENER };

enum key_type {
	T_WORD,		/* one of kd_words */
	T_UINT,		/* kd_min..kd_max, or one of kd_words */
	T_DURATION,	/* milliseconds, kd_min..kd_max */
	T_LISTEN,	/* TCP address */
	T_BACKEND,	/* TCP address or unix:/path */
	T_HOSTNAME,
	T_SOCKPATH,	/* absolute unix socket path, or empty */
	T_LOCALADDR,	/* loopback TCP address or unix:/path, or empty */
	T_CERT,		/* certificate and private_key: repeatable pairs */
	T_KEY,
	T_TLVS,		/* PROXY v2 TLV names, or none */
	T_CIDRS,	/* address ranges separated by blanks */
	T_FILE,		/* a file name, kept with its line */
	T_GROUPS,	/* key-exchange group names, kept with their line */
};

struct key_word {
	const char *kw_word;
	int kw_val;
};

struct key_desc {
	const char *kd_name;
	enum key_type kd_type;
	enum key_scope kd_scope;
	size_t kd_off;			/* in mk_config or mk_listener_cfg */
	size_t kd_size;
	unsigned long kd_min, kd_max;
	const struct key_word *kd_words;
	const char *kd_expect;		/* "bad value ... (expected %s)" */
};

static const struct key_word w_auto[] = { { "auto", 0 }, { NULL, 0 } };
static const struct key_word w_log[] = {
	{ "stderr", MK_LOG_STDERR }, { "syslog", MK_LOG_SYSLOG }, { NULL, 0 } };
static const struct key_word w_ktls[] = {
	{ "auto", MK_KTLS_AUTO }, { "require", MK_KTLS_REQUIRE }, { "off", MK_KTLS_OFF },
	{ NULL, 0 } };
static const struct key_word w_proto[] = {
	{ "imap", MK_PROTO_IMAP }, { "pop3", MK_PROTO_POP3 },
	{ "submission", MK_PROTO_SUBMISSION }, { NULL, 0 } };
static const struct key_word w_tls[] = {
	{ "implicit", MK_TLS_IMPLICIT }, { "starttls", MK_TLS_STARTTLS }, { NULL, 0 } };
static const struct key_word w_proxy[] = { { "v2", 1 }, { "none", 0 }, { NULL, 0 } };
static const struct key_word w_yesno[] = { { "yes", 1 }, { "no", 0 }, { NULL, 0 } };
static const struct key_word w_version[] = {
	{ "1.2", TLS1_2_VERSION }, { "1.3", TLS1_3_VERSION }, { NULL, 0 } };
static const struct key_word w_alpn[] = { { "strict", 1 }, { "off", 0 }, { NULL, 0 } };
static const struct key_word w_client_cert[] = {
	{ "none", MK_CLIENT_CERT_NONE }, { "optional", MK_CLIENT_CERT_OPTIONAL },
	{ "require", MK_CLIENT_CERT_REQUIRE }, { NULL, 0 } };

#define G(f) SCOPE_GLOBAL, offsetof(struct mk_config, f), sizeof(((struct mk_config *)0)->f)
#define L(f) SCOPE_LISTENER, offsetof(struct mk_listener_cfg, f), \
	sizeof(((struct mk_listener_cfg *)0)->f)

/* Order matters for the index constants below. */
static const struct key_desc mk_keys[] = {
	{ "listen", T_LISTEN, L(lc_listen), 0, 0, NULL,
	  "IPv4:port or [IPv6]:port" },
	{ "protocol", T_WORD, L(lc_protocol), 0, 0, w_proto, "imap, pop3 or submission" },
	{ "tls", T_WORD, L(lc_tls), 0, 0, w_tls, "implicit or starttls" },
	{ "backend", T_BACKEND, L(lc_backend), 0, 0, NULL,
	  "IPv4:port, [IPv6]:port or unix:/absolute/path" },
	{ "certificate", T_CERT, L(lc_certs), 0, 0, NULL, "a file name" },
	{ "private_key", T_KEY, L(lc_certs), 0, 0, NULL, "a file name" },
	{ "proxy_protocol", T_WORD, L(lc_proxy_v2), 0, 0, w_proxy, "v2 or none" },
	{ "proxy_tlvs", T_TLVS, L(lc_proxy_tlvs), 0, 0, NULL,
	  "none, or some of alpn authority ssl ssl_version ssl_cipher ssl_cn crc32c" },
	{ "proxy_header_max", T_UINT, L(lc_proxy_header_max), 1, 65535, NULL,
	  "a number of bytes from 1 to 65535" },
	{ "accept_proxy", T_WORD, L(lc_accept_proxy), 0, 0, w_yesno, "yes or no" },
	{ "trusted_proxies", T_CIDRS, L(lc_trusted_proxies), 0, 0, NULL,
	  "IPv4 or IPv6 ranges such as 10.0.0.0/8 2001:db8::/32, separated by blanks" },
	{ "proxy_timeout", T_DURATION, L(lc_proxy_timeout_ms), 1, MK_DURATION_MAX_MS,
	  NULL, "a duration such as 500ms, 30s, 5m or 1h, at most 168h" },
	{ "min_version", T_WORD, L(lc_min_version), 0, 0, w_version, "1.2 or 1.3" },
	{ "alpn", T_WORD, L(lc_alpn_strict), 0, 0, w_alpn, "strict or off" },
	{ "groups", T_GROUPS, L(lc_groups), 0, 0, NULL,
	  "group names separated by colons, such as X25519MLKEM768:x25519:secp256r1" },
	{ "ticket_keys", T_FILE, L(lc_ticket_keys), 0, 0, NULL, "a file name" },
	{ "client_ca", T_FILE, L(lc_client_ca), 0, 0, NULL, "a file name" },
	{ "client_cert", T_WORD, L(lc_client_cert), 0, 0, w_client_cert,
	  "none, optional or require" },
	{ "handshake_timeout", T_DURATION, L(lc_handshake_timeout_ms), 1, MK_DURATION_MAX_MS,
	  NULL, "a duration such as 500ms, 30s, 5m or 1h, at most 168h" },
	{ "idle_timeout", T_DURATION, L(lc_idle_timeout_ms), 1, MK_DURATION_MAX_MS,
	  NULL, "a duration such as 500ms, 30s, 5m or 1h, at most 168h" },
	{ "max_connections", T_UINT, L(lc_max_connections), 1, 1000000, NULL,
	  "a number from 1 to 1000000" },
	{ "hostname", T_HOSTNAME, L(lc_hostname), 0, 0, NULL, "a DNS host name" },
	{ "pretls_timeout", T_DURATION, L(lc_pretls_timeout_ms), 1, MK_DURATION_MAX_MS,
	  NULL, "a duration such as 500ms, 30s, 5m or 1h, at most 168h" },
	{ "pretls_max_commands", T_UINT, L(lc_pretls_max_commands), 1, 1000, NULL,
	  "a number from 1 to 1000" },
	{ "max_auth_refusals", T_UINT, L(lc_max_auth_refusals), 0, 1000, NULL,
	  "a number from 0 to 1000" },
	{ "workers", T_UINT, G(cf_workers), 0, 1024, w_auto, "auto or a number from 0 to 1024" },
	{ "log", T_WORD, G(cf_log), 0, 0, w_log, "stderr or syslog" },
	{ "query_socket", T_SOCKPATH, G(cf_query_socket), 0, 0, NULL,
	  "an absolute path shorter than 108 bytes, or nothing" },
	{ "ktls", T_WORD, G(cf_ktls), 0, 0, w_ktls, "auto, require or off" },
	{ "metrics_listen", T_LOCALADDR, G(cf_metrics_listen), 0, 0, NULL,
	  "a loopback IPv4:port or [IPv6]:port, unix:/absolute/path, or nothing" },
	{ "key_process", T_WORD, G(cf_key_process), 0, 0, w_yesno, "yes or no" },
	{ "key_processes", T_UINT, G(cf_key_processes), 1, 64, w_auto,
	  "auto or a number from 1 to 64" },
};

#undef G
#undef L

/* The keys a listener cannot do without, in the order they are reported. */
enum { K_LISTEN, K_PROTOCOL, K_TLS, K_BACKEND, K_CERTIFICATE, K_PRIVATE_KEY, K_PROXY_PROTOCOL,
       K_PROXY_TLVS, K_PROXY_HEADER_MAX, K_ACCEPT_PROXY, K_TRUSTED_PROXIES, K_PROXY_TIMEOUT,
       K_MIN_VERSION, K_ALPN, K_GROUPS, K_TICKET_KEYS, K_CLIENT_CA, K_CLIENT_CERT };
#define NKEYS (sizeof(mk_keys) / sizeof(mk_keys[0]))

/* Where values go while a section is read, and which keys it set where. */
struct section {
	const char *se_title;		/* "[global]", "[defaults]", "[listener x]" */
	char se_title_buf[MK_NAME_MAX + 16];
	int se_line;
	struct mk_listener_cfg *se_lc;	/* NULL for [global] */
	int se_key_line[NKEYS];		/* 0: not set in this section */
	int se_pending_cert;		/* line of a certificate awaiting its key */
};

struct parser {
	const char *p_name;
	int p_line;
	char *p_err;
	size_t p_errlen;
	struct mk_config *p_cfg;
	struct section p_global;
	struct section p_defaults;
	struct mk_listener_cfg p_defaults_lc;
	struct section *p_lsec;		/* one per listener, parallel to cf_listeners */
	size_t p_cap;
	struct section *p_cur;
};

static int perr(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Format "FILE:LINE: message" (or "FILE: message" when @line is 0). */
static int perr(struct parser *p, int line, const char *fmt, ...)
{
	char msg[MK_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(p->p_err, p->p_errlen, "%s:%d: %s", p->p_name, line, msg);
	else
		snprintf(p->p_err, p->p_errlen, "%s: %s", p->p_name, msg);
	return -EINVAL;
}

/**
 * mk_config_key_name() - the name of a key the parser knows, for the test
 * that keeps mailktlsd.conf(5) and the parser in step
 * @i: 0 for the first key, then 1, 2, ...
 *
 * Return: the key's name, or NULL past the last key.
 */
const char *mk_config_key_name(size_t i)
{
	return i < NKEYS ? mk_keys[i].kd_name : NULL;
}

/**
 * mk_protocol_name() - the name of a protocol as written in the config
 * @p: protocol
 *
 * Return: "imap", "pop3", "submission", or "?" for an invalid value.
 */
const char *mk_protocol_name(enum mk_protocol p)
{
	const struct key_word *w;

	for (w = w_proto; w->kw_word; w++)
		if (w->kw_val == (int)p)
			return w->kw_word;
	return "?";
}

static void listener_set_defaults(struct mk_listener_cfg *lc)
{
	memset(lc, 0, sizeof(*lc));
	lc->lc_proxy_v2 = true;
	lc->lc_proxy_tlvs = PP2_SEND_DEFAULT;
	/* Exim's and Cyrus's limit; Postfix reads 536 bytes, Dovecot 1500. */
	lc->lc_proxy_header_max = 232;
	lc->lc_min_version = TLS1_2_VERSION;
	lc->lc_alpn_strict = true;
	lc->lc_handshake_timeout_ms = 10 * 1000;
	/* A balancer sends its header with the connection: a few seconds is
	 * generous, and bounds what a silent peer holds. */
	lc->lc_proxy_timeout_ms = 5 * 1000;
	lc->lc_idle_timeout_ms = 30 * 60 * 1000;
	lc->lc_max_connections = 10000;
	lc->lc_pretls_timeout_ms = 60 * 1000;
	lc->lc_pretls_max_commands = 32;
	lc->lc_max_auth_refusals = 3;
	if (gethostname(lc->lc_hostname, sizeof(lc->lc_hostname)) != 0)
		strcpy(lc->lc_hostname, "localhost");
	lc->lc_hostname[sizeof(lc->lc_hostname) - 1] = '\0';
}

static void store_int(void *dst, size_t size, long v)
{
	if (size == sizeof(bool))
		*(bool *)dst = v != 0;
	else
		*(int *)dst = (int)v;	/* int, unsigned int and enums share the size */
}

static bool parse_word(const struct key_desc *kd, const char *v, void *dst)
{
	const struct key_word *w;

	for (w = kd->kd_words; w && w->kw_word; w++) {
		if (strcmp(v, w->kw_word) == 0) {
			store_int(dst, kd->kd_size, w->kw_val);
			return true;
		}
	}
	return false;
}

/* Decimal digits only: no sign, no spaces, no hex, bounded. */
static bool parse_digits(const char **s, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *c = *s;

	if (!isdigit((unsigned char)*c))
		return false;
	for (; isdigit((unsigned char)*c); c++) {
		v = v * 10 + (unsigned long long)(*c - '0');
		if (v > UINT32_MAX * 1000ull)
			return false;
	}
	*s = c;
	*out = v;
	return true;
}

static bool parse_uint(const struct key_desc *kd, const char *v, void *dst)
{
	unsigned long long n;

	if (parse_word(kd, v, dst))
		return true;
	if (!parse_digits(&v, &n) || *v || n < kd->kd_min || n > kd->kd_max)
		return false;
	store_int(dst, kd->kd_size, (long)n);
	return true;
}

static bool parse_duration(const struct key_desc *kd, const char *v, void *dst)
{
	static const struct { const char *unit; unsigned long long ms; } units[] = {
		{ "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 },
	};
	unsigned long long n;
	size_t i;

	if (!parse_digits(&v, &n))
		return false;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(v, units[i].unit) == 0) {
			n *= units[i].ms;
			if (n < kd->kd_min || n > kd->kd_max)
				return false;
			store_int(dst, kd->kd_size, (long)n);
			return true;
		}
	}
	return false;
}

/* "a.b.c.d:port" or "[v6]:port", numeric only: no DNS at start-up. */
static bool parse_tcp_addr(const char *v, struct mk_sockaddr *a)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa_storage;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa_storage;

	if (mk_addr_parse(v, &a->sa_storage))
		return false;
	if (a->sa_storage.ss_family == AF_INET) {
		a->sa_len = sizeof(*s4);
		return s4->sin_port != 0;	/* a port to bind or connect to */
	}
	a->sa_len = sizeof(*s6);
	return s6->sin6_port != 0;
}

static bool parse_addr(const struct key_desc *kd, const char *v, void *dst)
{
	struct mk_sockaddr *a = dst;
	struct sockaddr_un *sun = (struct sockaddr_un *)&a->sa_storage;
	const char *path = v + strlen("unix:");

	memset(a, 0, sizeof(*a));
	snprintf(a->sa_text, sizeof(a->sa_text), "%s", v);
	if (kd->kd_type == T_LISTEN || strncmp(v, "unix:", strlen("unix:")) != 0)
		return parse_tcp_addr(v, a);
	if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path))
		return false;
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, path);
	a->sa_len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	return true;
}

/* RFC 1123 names only: the value goes into greetings and EHLO replies. */
static bool parse_hostname(const struct key_desc *kd, const char *v, void *dst)
{
	size_t len = strlen(v), label = 0;
	const char *c;

	if (len == 0 || len >= kd->kd_size || len > 253)
		return false;
	for (c = v; *c; c++) {
		if (*c == '.') {
			if (label == 0 || c[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*c) && !(*c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	if (label == 0 || c[-1] == '-')
		return false;
	strcpy(dst, v);
	return true;
}

static bool parse_sockpath(const struct key_desc *kd, const char *v, void *dst)
{
	struct sockaddr_un sun;

	if (v[0] && (v[0] != '/' || strlen(v) >= sizeof(sun.sun_path)))
		return false;
	snprintf(dst, kd->kd_size, "%s", v);
	return true;
}

/* Unauthenticated endpoints stay on the host: loopback or a unix socket. */
static bool parse_localaddr(const struct key_desc *kd, const char *v, void *dst)
{
	struct mk_sockaddr *a = dst;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa_storage;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa_storage;

	if (!v[0]) {
		memset(a, 0, sizeof(*a));
		return true;
	}
	if (!parse_addr(kd, v, dst))
		return false;
	switch (a->sa_storage.ss_family) {
	case AF_INET:
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	default:
		return true;
	}
}

static bool parse_value(const struct key_desc *kd, const char *v, void *dst)
{
	switch (kd->kd_type) {
	case T_WORD:
		return parse_word(kd, v, dst);
	case T_UINT:
		return parse_uint(kd, v, dst);
	case T_DURATION:
		return parse_duration(kd, v, dst);
	case T_LISTEN:
	case T_BACKEND:
		return parse_addr(kd, v, dst);
	case T_HOSTNAME:
		return parse_hostname(kd, v, dst);
	case T_SOCKPATH:
		return parse_sockpath(kd, v, dst);
	case T_LOCALADDR:
		return parse_localaddr(kd, v, dst);
	default:
		return false;
	}
}

/* A section ends: a certificate still waiting for its key is an error. */
static int section_close(struct parser *p)
{
	struct section *se = p->p_cur;

	if (se && se->se_pending_cert)
		return perr(p, se->se_pending_cert, "certificate without private_key");
	return 0;
}

static int cert_key(struct parser *p, const struct key_desc *kd, const char *v)
{
	struct section *se = p->p_cur;
	struct mk_listener_cfg *lc = se->se_lc;
	struct mk_certpair *cp;

	if (v[0] == '\0' || strlen(v) >= sizeof(cp->cp_cert))
		return perr(p, p->p_line, "bad value '%s' for '%s' (expected %s)", v,
			    kd->kd_name, kd->kd_expect);
	if (kd->kd_type == T_KEY) {
		if (!se->se_pending_cert)
			return perr(p, p->p_line, "private_key without certificate");
		strcpy(lc->lc_certs[lc->lc_ncerts++].cp_key, v);
		se->se_pending_cert = 0;
		return 0;
	}
	if (se->se_pending_cert)
		return perr(p, se->se_pending_cert, "certificate without private_key");
	if (lc->lc_ncerts == MK_MAX_CERTS)
		return perr(p, p->p_line, "too many certificate/private_key pairs (max %d)",
			    MK_MAX_CERTS);
	cp = &lc->lc_certs[lc->lc_ncerts];
	strcpy(cp->cp_cert, v);
	cp->cp_line = p->p_line;
	se->se_pending_cert = p->p_line;
	return 0;
}

/* One PP2_SEND_* bit by config name, 0 for an unknown name. */
static unsigned int tlv_bit(const char *name, size_t len)
{
	unsigned int bit;
	const char *n;

	for (bit = 1; bit <= PP2_SEND_ALL; bit <<= 1) {
		n = mk_proxy_v2_tlv_name(bit);
		if (n && strlen(n) == len && strncmp(name, n, len) == 0)
			return bit;
	}
	return 0;
}

/* "alpn authority ssl ...", each name once, or "none" alone. */
static int parse_tlvs(struct parser *p, const struct key_desc *kd, const char *v,
		      unsigned int *dst)
{
	unsigned int mask = 0, bit;
	size_t len;

	if (strcmp(v, "none") == 0) {
		*dst = 0;
		return 0;
	}
	while (*v) {
		len = strcspn(v, " \t");
		bit = tlv_bit(v, len);
		if (!bit)
			return perr(p, p->p_line, "unknown TLV '%.*s' in '%s' (expected %s)",
				    (int)len, v, kd->kd_name, kd->kd_expect);
		if (mask & bit)
			return perr(p, p->p_line, "TLV '%.*s' twice in '%s'", (int)len, v,
				    kd->kd_name);
		mask |= bit;
		v += len;
		v += strspn(v, " \t");
	}
	if (!mask)
		return perr(p, p->p_line, "bad value '' for '%s' (expected %s)", kd->kd_name,
			    kd->kd_expect);
	*dst = mask;
	return 0;
}

/* "10.0.0.0/8 2001:db8::/32": at least one range, at most MK_CIDRS_MAX. */
static int parse_cidrs(struct parser *p, const struct key_desc *kd, const char *v,
		       struct mk_cidrs *dst)
{
	char one[64];
	size_t len;

	memset(dst, 0, sizeof(*dst));
	while (*v) {
		len = strcspn(v, " \t,");
		if (dst->cs_n == MK_CIDRS_MAX)
			return perr(p, p->p_line, "too many ranges in '%s' (max %d)", kd->kd_name,
				    MK_CIDRS_MAX);
		if (len >= sizeof(one))
			len = sizeof(one) - 1;
		memcpy(one, v, len);
		one[len] = '\0';
		if (mk_cidr_parse(one, &dst->cs_net[dst->cs_n]))
			return perr(p, p->p_line, "bad range '%s' in '%s' (expected %s)", one,
				    kd->kd_name, kd->kd_expect);
		dst->cs_n++;
		v += strcspn(v, " \t,");
		v += strspn(v, " \t,");
	}
	if (!dst->cs_n)
		return perr(p, p->p_line, "bad value '' for '%s' (expected %s)", kd->kd_name,
			    kd->kd_expect);
	return 0;
}

/*
 * The characters of OpenSSL's group-list syntax; whether the names exist is
 * for the linked OpenSSL to say (mk_tls_groups_check()).
 */
static bool valid_groups(const char *v, size_t size)
{
	size_t len = strlen(v);

	if (len == 0 || len >= size)
		return false;
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && !strchr(":/-_?*", *v))
			return false;
	return true;
}

static int key_value(struct parser *p, const char *key, const char *v)
{
	struct section *se = p->p_cur;
	const struct key_desc *kd = NULL;
	size_t i;
	char *base;

	for (i = 0; i < NKEYS && !kd; i++)
		if (strcmp(key, mk_keys[i].kd_name) == 0)
			kd = &mk_keys[i];
	if (!kd || (kd->kd_scope == SCOPE_GLOBAL) != (se->se_lc == NULL)) {
		if (kd && se->se_lc == NULL)
			return perr(p, p->p_line, "unknown key '%s' in %s (listener keys go in "
				    "[defaults] or [listener NAME])", key, se->se_title);
		if (kd)
			return perr(p, p->p_line, "unknown key '%s' in %s (it goes in [global])",
				    key, se->se_title);
		return perr(p, p->p_line, "unknown key '%s' in %s", key, se->se_title);
	}
	i = kd - mk_keys;
	if (kd->kd_type == T_CERT || kd->kd_type == T_KEY) {
		se->se_key_line[i] = p->p_line;
		return cert_key(p, kd, v);
	}
	if (se->se_key_line[i])
		return perr(p, p->p_line, "duplicate key '%s' (first at line %d)", key,
			    se->se_key_line[i]);
	base = se->se_lc ? (char *)se->se_lc : (char *)p->p_cfg;
	if (kd->kd_type == T_TLVS) {
		se->se_key_line[i] = p->p_line;
		return parse_tlvs(p, kd, v, (unsigned int *)(base + kd->kd_off));
	}
	if (kd->kd_type == T_CIDRS) {
		se->se_key_line[i] = p->p_line;
		return parse_cidrs(p, kd, v, (struct mk_cidrs *)(base + kd->kd_off));
	}
	if (kd->kd_type == T_FILE) {
		struct mk_path_cfg *pc = (struct mk_path_cfg *)(base + kd->kd_off);

		if (v[0] == '\0' || strlen(v) >= sizeof(pc->pc_path))
			return perr(p, p->p_line, "bad value '%s' for '%s' (expected %s)", v,
				    key, kd->kd_expect);
		strcpy(pc->pc_path, v);
		pc->pc_line = p->p_line;
		se->se_key_line[i] = p->p_line;
		return 0;
	}
	if (kd->kd_type == T_GROUPS) {
		struct mk_groups_cfg *gc = (struct mk_groups_cfg *)(base + kd->kd_off);

		if (!valid_groups(v, sizeof(gc->gc_list)))
			return perr(p, p->p_line, "bad value '%s' for '%s' (expected %s)", v,
				    key, kd->kd_expect);
		strcpy(gc->gc_list, v);
		gc->gc_line = p->p_line;
		se->se_key_line[i] = p->p_line;
		return 0;
	}
	if (!parse_value(kd, v, base + kd->kd_off))
		return perr(p, p->p_line, "bad value '%s' for '%s' (expected %s)", v, key,
			    kd->kd_expect);
	se->se_key_line[i] = p->p_line;
	return 0;
}

static bool valid_listener_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len >= MK_NAME_MAX)
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && !strchr("._-", *n))
			return false;
	return true;
}

static int new_listener(struct parser *p, const char *name)
{
	struct mk_config *cfg = p->p_cfg;
	struct section *se;
	size_t i;

	if (!valid_listener_name(name))
		return perr(p, p->p_line, "bad listener name '%s' (expected 1 to %d of "
			    "A-Z a-z 0-9 . _ -)", name, MK_NAME_MAX - 1);
	for (i = 0; i < cfg->cf_nlisteners; i++)
		if (strcmp(cfg->cf_listeners[i].lc_name, name) == 0)
			return perr(p, p->p_line, "duplicate listener name '%s' (first at line %d)",
				    name, cfg->cf_listeners[i].lc_line);
	if (cfg->cf_nlisteners == MK_MAX_LISTENERS)
		return perr(p, p->p_line, "too many listeners (max %d)", MK_MAX_LISTENERS);
	if (cfg->cf_nlisteners == p->p_cap) {
		size_t ncap = p->p_cap ? p->p_cap * 2 : 4;
		struct mk_listener_cfg *nl;

		nl = realloc(cfg->cf_listeners, ncap * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		cfg->cf_listeners = nl;
		se = realloc(p->p_lsec, ncap * sizeof(*se));
		if (!se)
			return -ENOMEM;
		p->p_lsec = se;
		p->p_cap = ncap;
		for (i = 0; i < cfg->cf_nlisteners; i++)
			se[i].se_lc = &nl[i];
	}
	se = &p->p_lsec[cfg->cf_nlisteners];
	memset(se, 0, sizeof(*se));
	se->se_lc = &cfg->cf_listeners[cfg->cf_nlisteners++];
	listener_set_defaults(se->se_lc);
	snprintf(se->se_lc->lc_name, sizeof(se->se_lc->lc_name), "%s", name);
	se->se_lc->lc_line = p->p_line;
	snprintf(se->se_title_buf, sizeof(se->se_title_buf), "[listener %s]", name);
	se->se_title = se->se_title_buf;
	se->se_line = p->p_line;
	p->p_cur = se;
	return 0;
}

static char *trim(char *s)
{
	char *e = s + strlen(s);

	while (*s == ' ' || *s == '\t')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	return s;
}

static int section_header(struct parser *p, char *line)
{
	static const char expect[] = "expected [global], [defaults] or [listener NAME]";
	char *end = strchr(line, ']'), *name;
	struct section *se = NULL;
	int err;

	err = section_close(p);
	if (err)
		return err;
	if (!end || *trim(end + 1))
		return perr(p, p->p_line, "bad section header (%s)", expect);
	*end = '\0';
	name = trim(line + 1);
	if (strcmp(name, "global") == 0)
		se = &p->p_global;
	else if (strcmp(name, "defaults") == 0)
		se = &p->p_defaults;
	else if (strncmp(name, "listener", 8) == 0 && (name[8] == ' ' || name[8] == '\t'))
		return new_listener(p, trim(name + 8));
	else if (strcmp(name, "listener") == 0)
		return perr(p, p->p_line, "listener without a name (expected [listener NAME])");
	else
		return perr(p, p->p_line, "unknown section [%s] (%s)", name, expect);
	if (se->se_line)
		return perr(p, p->p_line, "duplicate section %s (first at line %d)",
			    se->se_title, se->se_line);
	se->se_line = p->p_line;
	p->p_cur = se;
	return 0;
}

/*
 * A comment starts a line, or follows white space: "workers = 4  # cores".
 * A '#' or ';' glued to a value (a path, say) stays part of it.
 */
static void strip_comment(char *s)
{
	char *c;

	for (c = s; *c; c++) {
		if ((*c == '#' || *c == ';') && (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
	}
}

static int parse_line(struct parser *p, char *line)
{
	char *eq, *key;
	size_t i;

	for (i = 0; line[i]; i++)
		if (iscntrl((unsigned char)line[i]) && line[i] != '\t')
			return perr(p, p->p_line, "control character 0x%02x in line",
				    (unsigned char)line[i]);
	strip_comment(line);
	line = trim(line);
	if (!*line)
		return 0;
	if (*line == '[')
		return section_header(p, line);
	eq = strchr(line, '=');
	if (!eq)
		return perr(p, p->p_line, "expected 'key = value', a [section] or a comment");
	*eq = '\0';
	key = trim(line);
	if (!*key)
		return perr(p, p->p_line, "expected 'key = value', a [section] or a comment");
	if (!p->p_cur)
		return perr(p, p->p_line, "key '%s' outside a section", key);
	return key_value(p, key, trim(eq + 1));
}

/*
 * Same port and family, and the same address or a wildcard on either side:
 * with SO_REUSEPORT both binds would succeed and split the clients between
 * two listeners. [::] next to 0.0.0.0 is fine (the listeners set V6ONLY).
 */
static bool addr_overlap(const struct mk_sockaddr *a, const struct mk_sockaddr *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->sa_storage;
	const struct sockaddr_in *b4 = (const void *)&b->sa_storage;
	const struct sockaddr_in6 *a6 = (const void *)&a->sa_storage;
	const struct sockaddr_in6 *b6 = (const void *)&b->sa_storage;

	if (a4->sin_family != b4->sin_family)
		return false;
	if (a4->sin_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		       (a4->sin_addr.s_addr == b4->sin_addr.s_addr ||
			a4->sin_addr.s_addr == INADDR_ANY || b4->sin_addr.s_addr == INADDR_ANY);
	return a6->sin6_port == b6->sin6_port &&
	       (IN6_ARE_ADDR_EQUAL(&a6->sin6_addr, &b6->sin6_addr) ||
		IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr));
}

/* A listener's own value wins; otherwise [defaults]; otherwise built in. */
static void inherit(struct parser *p, struct section *se)
{
	struct mk_listener_cfg *lc = se->se_lc;
	const struct section *d = &p->p_defaults;
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		const struct key_desc *kd = &mk_keys[i];

		if (kd->kd_scope != SCOPE_LISTENER || se->se_key_line[i] ||
		    !d->se_key_line[i])
			continue;
		se->se_key_line[i] = d->se_key_line[i];
		if (kd->kd_type == T_KEY)
			continue;
		if (kd->kd_type == T_CERT) {
			memcpy(lc->lc_certs, p->p_defaults_lc.lc_certs, sizeof(lc->lc_certs));
			lc->lc_ncerts = p->p_defaults_lc.lc_ncerts;
			continue;
		}
		memcpy((char *)lc + kd->kd_off, (char *)&p->p_defaults_lc + kd->kd_off,
		       kd->kd_size);
	}
}

/* Taking client addresses from anyone who connects would let anyone choose one. */
static int check_accept_proxy(struct parser *p, const struct section *se)
{
	const struct mk_listener_cfg *lc = se->se_lc;

	if (lc->lc_accept_proxy && !lc->lc_trusted_proxies.cs_n)
		return perr(p, se->se_key_line[K_ACCEPT_PROXY], "listener '%s': accept_proxy = "
			    "yes needs trusted_proxies (the load balancers' addresses)",
			    lc->lc_name);
	return 0;
}

/*
 * The header must hold at least the fixed part and the addresses of the
 * listener's family, and the SSL sub-TLVs travel only inside PP2_TYPE_SSL.
 */
static int check_proxy(struct parser *p, const struct section *se)
{
	const struct mk_listener_cfg *lc = se->se_lc;
	bool v6 = lc->lc_listen.sa_storage.ss_family == AF_INET6;
	unsigned int need = PP2_FIXED_LEN + (v6 ? PP2_ADDR_LEN_INET6 : PP2_ADDR_LEN_INET);
	unsigned int sub = PP2_SEND_SSL_VERSION | PP2_SEND_SSL_CIPHER | PP2_SEND_SSL_CN;

	if (!lc->lc_proxy_v2)
		return 0;
	if (lc->lc_proxy_header_max < need)
		return perr(p, se->se_key_line[K_PROXY_HEADER_MAX], "listener '%s': "
			    "proxy_header_max = %u is below the %u bytes of a PROXY v2 header "
			    "with %s addresses and no TLV", lc->lc_name, lc->lc_proxy_header_max,
			    need, v6 ? "IPv6" : "IPv4");
	if ((lc->lc_proxy_tlvs & sub) && !(lc->lc_proxy_tlvs & PP2_SEND_SSL))
		return perr(p, se->se_key_line[K_PROXY_TLVS], "listener '%s': ssl_version, "
			    "ssl_cipher and ssl_cn are sent inside ssl: add ssl to proxy_tlvs",
			    lc->lc_name);
	return 0;
}

/* A client certificate is verified against client_ca: one without the other is a mistake. */
static int check_client_cert(struct parser *p, const struct section *se)
{
	const struct mk_listener_cfg *lc = se->se_lc;

	if (lc->lc_client_cert != MK_CLIENT_CERT_NONE && !lc->lc_client_ca.pc_path[0])
		return perr(p, se->se_key_line[K_CLIENT_CERT], "listener '%s': client_cert = %s "
			    "needs client_ca", lc->lc_name,
			    lc->lc_client_cert == MK_CLIENT_CERT_REQUIRE ? "require" : "optional");
	return 0;
}

static int check_listener(struct parser *p, size_t idx)
{
	static const int required[] = { K_LISTEN, K_PROTOCOL, K_TLS, K_BACKEND, K_CERTIFICATE };
	struct section *se = &p->p_lsec[idx];
	struct mk_listener_cfg *lc = se->se_lc;
	size_t i;

	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!se->se_key_line[required[i]])
			return perr(p, lc->lc_line, "listener '%s' has no '%s'", lc->lc_name,
				    mk_keys[required[i]].kd_name);
	for (i = 0; i < idx; i++) {
		const struct mk_listener_cfg *o = &p->p_cfg->cf_listeners[i];

		if (addr_overlap(&o->lc_listen, &lc->lc_listen))
			return perr(p, se->se_key_line[K_LISTEN], "listener '%s': address %s "
				    "overlaps %s of listener '%s' (line %d)", lc->lc_name,
				    lc->lc_listen.sa_text, o->lc_listen.sa_text, o->lc_name,
				    p->p_lsec[i].se_key_line[K_LISTEN]);
	}
	return check_accept_proxy(p, se) ?: check_proxy(p, se) ?: check_client_cert(p, se);
}

static int finish(struct parser *p)
{
	size_t i;
	int err;

	err = section_close(p);
	if (err)
		return err;
	if (p->p_cfg->cf_nlisteners == 0)
		return perr(p, 0, "no [listener NAME] section");
	for (i = 0; i < p->p_cfg->cf_nlisteners; i++)
		inherit(p, &p->p_lsec[i]);
	for (i = 0; i < p->p_cfg->cf_nlisteners; i++) {
		err = check_listener(p, i);
		if (err)
			return err;
	}
	return 0;
}

static int parse_lines(struct parser *p, const char *text, size_t len)
{
	char line[MK_CONF_LINE_MAX + 1];
	size_t off = 0;
	int err;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t raw = nl ? (size_t)(nl - text) - off : len - off;
		size_t llen = raw;

		p->p_line++;
		if (llen && text[off + llen - 1] == '\r')
			llen--;		/* files edited on other systems */
		if (llen > MK_CONF_LINE_MAX)
			return perr(p, p->p_line, "line too long (max %d bytes)",
				    MK_CONF_LINE_MAX);
		memcpy(line, text + off, llen);
		line[llen] = '\0';
		if (memchr(line, '\0', llen))
			return perr(p, p->p_line, "NUL byte in line");
		err = parse_line(p, line);
		if (err)
			return err;
		off += raw + (nl ? 1 : 0);
	}
	return finish(p);
}

static void parser_init(struct parser *p, struct mk_config *cfg, const char *name, char *err,
			size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->p_name = name;
	p->p_err = err;
	p->p_errlen = errlen;
	p->p_cfg = cfg;
	p->p_global.se_title = "[global]";
	p->p_defaults.se_title = "[defaults]";
	p->p_defaults.se_lc = &p->p_defaults_lc;
	listener_set_defaults(&p->p_defaults_lc);
	snprintf(cfg->cf_path, sizeof(cfg->cf_path), "%s", name);
	cfg->cf_log = MK_LOG_STDERR;
	cfg->cf_ktls = MK_KTLS_AUTO;
	cfg->cf_key_process = true;
	snprintf(cfg->cf_query_socket, sizeof(cfg->cf_query_socket), "/run/mailktls/query.sock");
}

int mk_config_parse_buffer(const char *name, const char *text, size_t len,
			   struct mk_config **out, char *err, size_t errlen)
{
	struct mk_config *cfg;
	struct parser *p;
	int ret;

	if (errlen)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	p = malloc(sizeof(*p));
	if (!cfg || !p) {
		snprintf(err, errlen, "%s: out of memory", name);
		ret = -ENOMEM;
		goto out_free;
	}
	parser_init(p, cfg, name, err, errlen);
	if (len > MK_CONF_SIZE_MAX)
		ret = perr(p, 0, "file too large (max %d bytes)", MK_CONF_SIZE_MAX);
	else
		ret = parse_lines(p, text, len);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", name);
	free(p->p_lsec);
	if (ret == 0) {
		*out = cfg;
		cfg = NULL;
	}
out_free:
	free(p);
	mk_config_free(cfg);
	return ret;
}

int mk_config_load(const char *path, struct mk_config **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_err;
	}
	/* One byte more than allowed, so that the parser sees "too large". */
	text = malloc(MK_CONF_SIZE_MAX + 1);
	if (!text) {
		ret = -ENOMEM;
		goto out_close;
	}
	while (len < MK_CONF_SIZE_MAX + 1) {
		n = read(fd, text + len, MK_CONF_SIZE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	ret = mk_config_parse_buffer(path, text, len, out, err, errlen);
	free(text);
	return ret;

out_free:
	free(text);
out_close:
	close(fd);
out_err:
	snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
	return ret;
}

/**
 * mk_config_free() - release a configuration
 * @cfg: from mk_config_load() or mk_config_parse_buffer(); NULL is fine
 */
void mk_config_free(struct mk_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->cf_listeners);
	free(cfg);
}
