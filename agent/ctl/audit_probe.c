// SPDX-License-Identifier: GPL-2.0
/*
 * One service endpoint, checked the way a careful mail client connects:
 * TCP, the pre-TLS dialogue on STARTTLS ports (greeting, capabilities, a
 * login probe, STARTTLS/STLS), the TLS handshake with TLS 1.2 or later, the
 * certificate against the name the client looked up, TLSA, then a second
 * handshake offering only TLS 1.0/1.1, which must be refused.
 *
 * Every read has a length limit (AUDIT_LINE_MAX per line, AUDIT_RESPONSE_*
 * per response) and every wait ends at the probe's deadline: a silent
 * server, an endless banner or a 1 MiB line cost one finding, no more.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "audit.h"
#include "clock.h"

#define AUDIT_EXPIRY_WARN_DAYS 30

struct audit_conn {
	int cn_fd;
	SSL *cn_ssl;
	int64_t cn_deadline;
	char cn_buf[AUDIT_LINE_MAX + 1];
	size_t cn_have;
	char cn_line[AUDIT_LINE_MAX + 1];
	size_t cn_len;
	const char *cn_err; /* why the last read or write failed */
};

/* What the verify callback saw along the chain. */
struct audit_verify {
	bool av_expired;
	bool av_not_yet;
	int av_other; /* first other X509_V_ERR_*, 0 if none */
};

static int verify_idx = -1;

static int64_t left_ms(const struct audit_conn *c)
{
	return c->cn_deadline - (int64_t)mk_now_ms();
}

/* Wait for @events on the socket until the deadline. */
static int wait_fd(struct audit_conn *c, short events)
{
	struct pollfd pfd = { .fd = c->cn_fd, .events = events };

	for (;;) {
		int64_t left = left_ms(c);
		int rc;

		if (left <= 0) {
			c->cn_err = "timeout";
			return -ETIMEDOUT;
		}
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			c->cn_err = "poll failed";
			return -errno;
		}
	}
}

static int tcp_connect(struct audit_conn *c, const struct sockaddr *sa, unsigned int salen)
{
	socklen_t sl = sizeof(int);
	int soerr = 0;

	c->cn_fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->cn_fd < 0) {
		c->cn_err = "socket failed";
		return -errno;
	}
	if (!connect(c->cn_fd, sa, salen))
		return 0;
	if (errno != EINPROGRESS) {
		c->cn_err = strerror(errno);
		return -errno;
	}
	if (wait_fd(c, POLLOUT))
		return -ETIMEDOUT;
	getsockopt(c->cn_fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		c->cn_err = strerror(soerr);
		return -soerr;
	}
	return 0;
}

/* Bytes from the socket or the TLS session; 0 at EOF, -errno on error. */
static ssize_t conn_read(struct audit_conn *c, char *buf, size_t len)
{
	for (;;) {
		ssize_t n;
		int e;

		if (!c->cn_ssl) {
			n = recv(c->cn_fd, buf, len, 0);
			if (n >= 0)
				return n;
			if (errno != EAGAIN && errno != EINTR) {
				c->cn_err = strerror(errno);
				return -errno;
			}
			if (wait_fd(c, POLLIN))
				return -ETIMEDOUT;
			continue;
		}
		n = SSL_read(c->cn_ssl, buf, (int)len);
		if (n > 0)
			return n;
		e = SSL_get_error(c->cn_ssl, (int)n);
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			c->cn_err = "TLS read failed";
			return -EIO;
		}
		if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT))
			return -ETIMEDOUT;
	}
}

static int conn_write(struct audit_conn *c, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n;

		if (c->cn_ssl) {
			n = SSL_write(c->cn_ssl, s + off, (int)(len - off));
			if (n <= 0) {
				int e = SSL_get_error(c->cn_ssl, (int)n);

				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					c->cn_err = "TLS write failed";
					return -EIO;
				}
				if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT))
					return -ETIMEDOUT;
				continue;
			}
		} else {
			n = send(c->cn_fd, s + off, len - off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR) {
					c->cn_err = strerror(errno);
					return -errno;
				}
				if (wait_fd(c, POLLOUT))
					return -ETIMEDOUT;
				continue;
			}
		}
		off += (size_t)n;
	}
	return 0;
}

/*
 * One line into cn_line (CR LF or LF stripped). -E2BIG when a line is
 * longer than AUDIT_LINE_MAX: the rest is never read.
 */
static int read_line(struct audit_conn *c)
{
	for (;;) {
		int rc = audit_line_take(c->cn_buf, &c->cn_have, c->cn_line, &c->cn_len);
		ssize_t n;

		if (rc == 1)
			return 0;
		if (rc < 0) {
			c->cn_err = "line longer than 2048 bytes";
			return rc;
		}
		n = conn_read(c, c->cn_buf + c->cn_have, AUDIT_LINE_MAX - c->cn_have);
		if (n == 0) {
			c->cn_err = "connection closed";
			return -ECONNRESET;
		}
		if (n < 0)
			return (int)n;
		c->cn_have += (size_t)n;
	}
}

/*
 * One response: lines until audit_line_classify() says it is complete,
 * at most AUDIT_RESPONSE_LINES lines and AUDIT_RESPONSE_MAX bytes.
 */
static int read_response(struct audit_conn *c, enum audit_proto proto, const char *tag,
			 struct audit_caps *caps, enum audit_status *st)
{
	size_t bytes = 0;

	for (unsigned int i = 0; i < AUDIT_RESPONSE_LINES; i++) {
		int err = read_line(c);

		if (err)
			return err;
		bytes += c->cn_len;
		if (bytes > AUDIT_RESPONSE_MAX)
			break;
		if (caps)
			audit_caps_scan(proto, c->cn_line, c->cn_len, caps);
		*st = audit_line_classify(proto, tag, c->cn_line, c->cn_len);
		if (*st == AUDIT_ST_BAD) {
			c->cn_err = "not a response of this protocol";
			return -EPROTO;
		}
		if (*st != AUDIT_ST_MORE)
			return 0;
	}
	c->cn_err = "response without end (too many lines)";
	return -E2BIG;
}

/* A command, and its response must be positive. */
static int command(struct audit_conn *c, enum audit_proto proto, const char *cmd,
		   const char *tag, struct audit_caps *caps, enum audit_status *st)
{
	int err = conn_write(c, cmd);

	if (!err)
		err = read_response(c, proto, tag, caps, st);
	return err;
}

static const char *const caps_cmd[] = {
	[AUDIT_IMAP] = "a1 CAPABILITY\r\n",
	[AUDIT_POP3] = "CAPA\r\n",
	[AUDIT_SMTP] = "EHLO audit.invalid\r\n",
};
static const char *const starttls_cmd[] = {
	[AUDIT_IMAP] = "a2 STARTTLS\r\n",
	[AUDIT_POP3] = "STLS\r\n",
	[AUDIT_SMTP] = "STARTTLS\r\n",
};

/* Greeting and capabilities before TLS. */
static int pretls_caps(struct audit_conn *c, enum audit_proto proto, struct audit_caps *caps)
{
	enum audit_status st;
	int err;

	err = read_response(c, proto, NULL, caps, &st);
	if (err)
		return err;
	if (st != AUDIT_ST_OK) {
		c->cn_err = "greeting refuses service";
		return -EPROTO;
	}
	err = conn_write(c, caps_cmd[proto]);
	if (!err)
		err = read_response(c, proto, proto == AUDIT_IMAP ? "a1" : NULL, caps, &st);
	if (!err && proto == AUDIT_POP3 && st == AUDIT_ST_OK)
		err = read_response(c, proto, "capa", caps, &st);
	return err;
}

/* STARTTLS / STLS: the server must say yes. */
static int pretls_starttls(struct audit_conn *c, enum audit_proto proto)
{
	enum audit_status st;
	int err = command(c, proto, starttls_cmd[proto], proto == AUDIT_IMAP ? "a2" : NULL, NULL,
			  &st);

	if (err)
		return err;
	if (st != AUDIT_ST_OK) {
		c->cn_err = "STARTTLS refused";
		return -EPERM;
	}
	if (c->cn_have) {
		c->cn_err = "bytes after the STARTTLS answer";
		return -EPROTO;
	}
	return 0;
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct audit_verify *v = SSL_get_ex_data(ssl, verify_idx);
	int e = X509_STORE_CTX_get_error(xs);

	if (ok || !v)
		return 1;
	if (e == X509_V_ERR_CERT_HAS_EXPIRED)
		v->av_expired = true;
	else if (e == X509_V_ERR_CERT_NOT_YET_VALID)
		v->av_not_yet = true;
	else if (!v->av_other)
		v->av_other = e;
	/* go on: the audit reports every problem, a client would stop here */
	return 1;
}

/* A client context: modern (TLS 1.2+, the library's defaults) or legacy (1.0/1.1 only). */
static SSL_CTX *client_ctx(bool legacy)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	if (legacy) {
		SSL_CTX_set_security_level(ctx, 0);
		if (!SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") ||
		    !SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) ||
		    !SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION))
			goto out_free;
	} else {
		if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
			goto out_free;
		/* SSL_CERT_FILE / SSL_CERT_DIR, or the system's store */
		SSL_CTX_set_default_verify_paths(ctx);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, verify_cb);
	return ctx;
out_free:
	SSL_CTX_free(ctx);
	return NULL;
}

static void host_of(const char *fqdn, char *out, size_t outlen)
{
	size_t l = strlen(fqdn);

	if (l && fqdn[l - 1] == '.')
		l--;
	snprintf(out, outlen, "%.*s", (int)l, fqdn);
}

static int tls_handshake(struct audit_conn *c, SSL_CTX *ctx, const char *sni,
			 struct audit_verify *v)
{
	if (verify_idx < 0)
		verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	c->cn_ssl = SSL_new(ctx);
	if (!c->cn_ssl || !SSL_set_fd(c->cn_ssl, c->cn_fd)) {
		c->cn_err = "SSL_new failed";
		return -ENOMEM;
	}
	SSL_set_tlsext_host_name(c->cn_ssl, sni);
	SSL_set_ex_data(c->cn_ssl, verify_idx, v);
	for (;;) {
		int rc = SSL_connect(c->cn_ssl), e;

		if (rc == 1)
			return 0;
		e = SSL_get_error(c->cn_ssl, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			unsigned long oe = ERR_peek_last_error();

			c->cn_err = oe ? ERR_reason_error_string(oe) : "handshake failed";
			if (!c->cn_err)
				c->cn_err = "handshake failed";
			ERR_clear_error();
			return -EPROTO;
		}
		if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT))
			return -ETIMEDOUT;
	}
}

static void conn_close(struct audit_conn *c)
{
	if (c->cn_ssl)
		SSL_free(c->cn_ssl);
	if (c->cn_fd >= 0)
		close(c->cn_fd);
	c->cn_ssl = NULL;
	c->cn_fd = -1;
	ERR_clear_error();
}

static void conn_init(struct audit_conn *c, const struct audit_probe_opts *po)
{
	int64_t step = (int64_t)mk_now_ms() + po->po_step_ms;

	memset(c, 0, sizeof(*c));
	c->cn_fd = -1;
	c->cn_deadline = step < po->po_deadline_ms ? step : po->po_deadline_ms;
}

/* The level of a "does not work" finding: MUST for advertised services. */
static enum audit_level adv_level(const struct audit_target *t)
{
	return t->at_from_srv ? AUDIT_MUST : AUDIT_NOTE;
}

/* Selector data (RFC 6698 §2.1.2) of @x, digested per matching type. */
static bool tlsa_match_one(const struct audit_tlsa *r, X509 *x)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool ok = false;
	int n;

	if (r->tl_selector == 0)
		n = i2d_X509(x, &der);
	else if (r->tl_selector == 1)
		n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	else
		return false;
	if (n <= 0)
		return false;
	if (r->tl_mtype == 0 && !r->tl_full_too_long) {
		ok = (size_t)n == r->tl_len && !memcmp(der, r->tl_data, r->tl_len);
	} else if (r->tl_mtype == 0) {
		EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
		ok = mdlen == 32 && !memcmp(md, r->tl_full_sha256, 32);
	} else if (r->tl_mtype == 1 || r->tl_mtype == 2) {
		EVP_Digest(der, (size_t)n, md, &mdlen, r->tl_mtype == 1 ? EVP_sha256() :
									  EVP_sha512(), NULL);
		ok = mdlen == r->tl_len && !memcmp(md, r->tl_data, mdlen);
	}
	OPENSSL_free(der);
	return ok;
}

/* Does any TLSA record match the chain the server sent? */
static bool tlsa_match(const struct audit_probe_opts *po, SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	int n = chain ? sk_X509_num(chain) : 0;

	for (unsigned int i = 0; i < po->po_tlsa_count; i++) {
		const struct audit_tlsa *r = &po->po_tlsa[i];

		for (int k = 0; k < n; k++) {
			/* usages 1 and 3 name the server's own certificate */
			if ((r->tl_usage == 1 || r->tl_usage == 3) && k > 0)
				break;
			if (tlsa_match_one(r, sk_X509_value(chain, k)))
				return true;
		}
	}
	return false;
}

static void check_tlsa(struct audit_target *t, const struct audit_probe_opts *po, SSL *ssl)
{
	if (!po->po_tlsa_count)
		return;
	if (tlsa_match(po, ssl)) {
		t->at_tlsa_state = t->at_tlsa_sec == AUDIT_SEC_SECURE ? "match" : "unsigned";
		return;
	}
	t->at_tlsa_state = "mismatch";
	audit_add(&t->at_fs, "tlsa-mismatch", AUDIT_MUST, "4.5",
		  "no TLSA record of _%u._tcp.%s matches the certificate served; DANE clients refuse it",
		  t->at_srv.sr_port, t->at_srv.sr_target);
}

static void check_expiry(struct audit_target *t, X509 *leaf, const struct audit_verify *v)
{
	const ASN1_TIME *na = X509_get0_notAfter(leaf);
	int days = 0, secs = 0;
	struct tm tm;

	if (ASN1_TIME_to_tm(na, &tm))
		strftime(t->at_not_after, sizeof(t->at_not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (X509_cmp_current_time(na) <= 0) {
		audit_add(&t->at_fs, "cert-expired", AUDIT_MUST, "4.4",
			  "certificate expired %s", t->at_not_after);
		return;
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, na) && days < AUDIT_EXPIRY_WARN_DAYS)
		audit_add(&t->at_fs, "cert-expiring", AUDIT_SHOULD, "4.4",
			  "certificate expires in %d days (%s)", days, t->at_not_after);
	if (v->av_expired)
		audit_add(&t->at_fs, "cert-chain-expired", AUDIT_MUST, "4.4",
			  "a certificate of the chain has expired");
	if (v->av_not_yet)
		audit_add(&t->at_fs, "cert-not-yet-valid", AUDIT_MUST, "4.4",
			  "a certificate of the chain is not yet valid");
}

/* Chain, name (RFC 6125 / RFC 7817), expiry, TLSA, group and cipher. */
static void check_session(struct audit_target *t, const struct audit_probe_opts *po,
			  struct audit_conn *c, const struct audit_verify *v)
{
	X509 *leaf = SSL_get1_peer_certificate(c->cn_ssl);
	const SSL_CIPHER *ci = SSL_get_current_cipher(c->cn_ssl);
	int gid = SSL_get_negotiated_group(c->cn_ssl);
	const char *gname = gid ? SSL_group_to_name(c->cn_ssl, gid) : NULL;
	char host[AUDIT_NAME_MAX], dom[AUDIT_NAME_MAX];

	t->at_tls_ok = true;
	snprintf(t->at_version, sizeof(t->at_version), "%s", SSL_get_version(c->cn_ssl));
	snprintf(t->at_cipher, sizeof(t->at_cipher), "%s", ci ? SSL_CIPHER_standard_name(ci) : "");
	snprintf(t->at_group, sizeof(t->at_group), "%s", gname ? gname : "");
	t->at_pq = gname && (strstr(gname, "MLKEM") || strstr(gname, "Kyber") ||
			     strstr(gname, "mlkem") || strstr(gname, "kyber"));
	audit_add(&t->at_fs, "tls-params", AUDIT_NOTE, "4", "%s %s, key exchange %s (%s)",
		  t->at_version, t->at_cipher, t->at_group[0] ? t->at_group : "?",
		  t->at_pq ? "post-quantum hybrid" : "not post-quantum");
	if (!leaf) {
		audit_add(&t->at_fs, "cert-missing", AUDIT_MUST, "4.4", "no server certificate");
		return;
	}
	host_of(t->at_srv.sr_target, host, sizeof(host));
	host_of(po->po_domain, dom, sizeof(dom));
	if (X509_check_host(leaf, host, 0, 0, NULL) != 1) {
		if (X509_check_host(leaf, dom, 0, 0, NULL) == 1)
			audit_add(&t->at_fs, "cert-name-domain", AUDIT_NOTE, "5.3",
				  "certificate names the domain %s, not the server %s", dom, host);
		else
			audit_add(&t->at_fs, "cert-name", AUDIT_MUST, "4.4",
				  "certificate is not valid for %s (nor %s): RFC 6125/7817", host,
				  dom);
	}
	check_expiry(t, leaf, v);
	if (v->av_other)
		audit_add(&t->at_fs, "cert-untrusted", AUDIT_MUST, "4.4",
			  "chain does not validate: %s", X509_verify_cert_error_string(v->av_other));
	check_tlsa(t, po, c->cn_ssl);
	X509_free(leaf);
}

/* Read the service's greeting through TLS: the port speaks the protocol. */
static void check_greeting(struct audit_target *t, struct audit_conn *c)
{
	enum audit_status st;
	int err = read_response(c, t->at_def->sd_proto, NULL, NULL, &st);

	if (err || st != AUDIT_ST_OK)
		audit_add(&t->at_fs, "greeting", AUDIT_MUST, "3",
			  "no %s greeting after TLS: %s", t->at_def->sd_name,
			  err ? c->cn_err : "service refused");
}

static void pretls_findings(struct audit_target *t, const struct audit_caps *caps)
{
	const char *what = t->at_def->sd_proto == AUDIT_SMTP ? "STARTTLS" :
			   t->at_def->sd_proto == AUDIT_IMAP ? "STARTTLS" : "STLS";

	if (!caps->ca_starttls)
		audit_add(&t->at_fs, "starttls-missing", AUDIT_MUST, "4",
			  "%s not offered: the service is cleartext only", what);
	if (t->at_def->sd_proto == AUDIT_IMAP && !caps->ca_logindisabled)
		audit_add(&t->at_fs, "login-before-tls", AUDIT_MUST, "4.1",
			  "IMAP does not announce LOGINDISABLED before TLS");
	if (t->at_def->sd_proto == AUDIT_SMTP && caps->ca_auth)
		audit_add(&t->at_fs, "login-before-tls", AUDIT_MUST, "4.1",
			  "SMTP offers AUTH before TLS");
}

/* POP3: USER before STLS must get -ERR (a fresh connection, then QUIT). */
static void pop3_login_probe(struct audit_target *t, const struct sockaddr *sa,
			     unsigned int salen, const struct audit_probe_opts *po)
{
	struct audit_conn c;
	enum audit_status st;

	conn_init(&c, po);
	if (tcp_connect(&c, sa, salen) || read_response(&c, AUDIT_POP3, NULL, NULL, &st) ||
	    st != AUDIT_ST_OK || command(&c, AUDIT_POP3, "USER audit-probe\r\n", NULL, NULL, &st))
		goto out;
	if (st == AUDIT_ST_OK)
		audit_add(&t->at_fs, "login-before-tls", AUDIT_MUST, "4.1",
			  "POP3 accepts USER before TLS");
	conn_write(&c, "QUIT\r\n");
out:
	conn_close(&c);
}

/* Connect (and STARTTLS); 0 when the socket is ready for a ClientHello. */
static int open_to_tls(struct audit_target *t, struct audit_conn *c, const struct sockaddr *sa,
		       unsigned int salen, struct audit_caps *caps)
{
	int err = tcp_connect(c, sa, salen);

	if (err || t->at_def->sd_implicit)
		return err;
	err = pretls_caps(c, t->at_def->sd_proto, caps);
	if (!err && caps->ca_starttls)
		err = pretls_starttls(c, t->at_def->sd_proto);
	return err;
}

/* Offer only TLS 1.0 and 1.1; a handshake that succeeds is a finding. */
static void legacy_probe(struct audit_target *t, const struct sockaddr *sa, unsigned int salen,
			 const struct audit_probe_opts *po, const char *sni)
{
	SSL_CTX *ctx = client_ctx(true);
	struct audit_verify v = { 0 };
	struct audit_caps caps = { 0 };
	struct audit_conn c;

	if (!ctx)
		return;
	conn_init(&c, po);
	if (!open_to_tls(t, &c, sa, salen, &caps) && (t->at_def->sd_implicit || caps.ca_starttls) &&
	    !tls_handshake(&c, ctx, sni, &v))
		audit_add(&t->at_fs, "tls-old-version", AUDIT_MUST, "4.1",
			  "%s accepted: TLS 1.0 and 1.1 must be refused (RFC 8997)",
			  SSL_get_version(c.cn_ssl));
	conn_close(&c);
	SSL_CTX_free(ctx);
}

/**
 * audit_probe() - check one endpoint; findings go to @t->at_fs.
 * @t: the service, target and port; results are filled in
 * @sa: the address to connect to
 * @salen: its length
 * @po: the domain, the deadlines and the port's TLSA records
 */
void audit_probe(struct audit_target *t, const struct sockaddr *sa, unsigned int salen,
		 const struct audit_probe_opts *po)
{
	SSL_CTX *ctx = client_ctx(false);
	struct audit_verify v = { 0 };
	struct audit_caps caps = { 0 };
	char sni[AUDIT_NAME_MAX];
	struct audit_conn c;
	int err;

	t->at_checked = true;
	if (!ctx) {
		audit_add(&t->at_fs, "internal", AUDIT_NOTE, "4", "no TLS context");
		return;
	}
	host_of(t->at_srv.sr_target, sni, sizeof(sni));
	conn_init(&c, po);
	err = tcp_connect(&c, sa, salen);
	if (err) {
		audit_add(&t->at_fs, err == -ETIMEDOUT ? "timeout" : "connect-failed",
			  adv_level(t), "4", "%s: %s", t->at_from_srv ? "advertised service" :
			  "well-known port", c.cn_err ? c.cn_err : "connect failed");
		goto out;
	}
	t->at_connected = true;
	if (!t->at_def->sd_implicit) {
		err = pretls_caps(&c, t->at_def->sd_proto, &caps);
		if (err) {
			audit_add(&t->at_fs, err == -ETIMEDOUT ? "timeout" : "protocol-error",
				  AUDIT_MUST, "4", "before TLS: %s", c.cn_err);
			goto out;
		}
		pretls_findings(t, &caps);
		if (t->at_def->sd_proto == AUDIT_POP3)
			pop3_login_probe(t, sa, salen, po);
		if (!caps.ca_starttls)
			goto out;
		err = pretls_starttls(&c, t->at_def->sd_proto);
		if (err) {
			audit_add(&t->at_fs, "starttls-failed", AUDIT_MUST, "4", "%s", c.cn_err);
			goto out;
		}
	}
	err = tls_handshake(&c, ctx, sni, &v);
	if (err == -ETIMEDOUT) {
		audit_add(&t->at_fs, "timeout", AUDIT_MUST, "4",
			  "no TLS handshake within %lld ms", (long long)po->po_step_ms);
	} else if (err) {
		audit_add(&t->at_fs, "tls-handshake-failed", AUDIT_MUST, "4",
			  "no TLS 1.2 or later: %s", c.cn_err);
	} else {
		check_session(t, po, &c, &v);
		if (t->at_def->sd_implicit)
			check_greeting(t, &c);
	}
	conn_close(&c);
	legacy_probe(t, sa, salen, po, sni);
out:
	conn_close(&c);
	SSL_CTX_free(ctx);
}
