// SPDX-License-Identifier: GPL-2.0
/*
 * One listener's TLS policy as OpenSSL 3 server contexts.
 *
 * Certificates for the same names (an RSA and an ECDSA one, typically) share
 * one SSL_CTX, and OpenSSL picks between them by the signature algorithms the
 * client offers. Certificates for other names get their own SSL_CTX; the
 * servername callback moves a connection to the one whose leaf matches the
 * SNI, else it stays on the first. Every context of a listener carries the
 * same settings and callbacks because SSL_set_SSL_CTX() makes the new one
 * answer ALPN and keylog callbacks.
 *
 * The keylog callback is set only while the kernel takes the keys
 * (mk_tls_policy_capture_secrets()): with it OpenSSL formats five hex lines
 * per TLS 1.3 handshake, about a tenth of the agent's handshake
 * instructions, which the user-space record layer has no use for.
 *
 * Cipher order: with only ECDHE+AEAD suites on offer every choice is strong,
 * so the server's order (SSL_OP_CIPHER_SERVER_PREFERENCE) is used to prefer
 * AES-GCM, which the kernel's TLS offload runs on AES-NI, while
 * SSL_OP_PRIORITIZE_CHACHA still gives ChaCha20 to clients that list it first
 * (phones without AES hardware).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "keyproc.h"
#include "tls_client_cert.h"
#include "tls_groups.h"
#include "tls_keys.h"
#include "tls_policy.h"
#include "tls_tickets.h"

#define MK_TLS12_CIPHERS \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define MK_TLS13_SUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
/* No SHA-1 and no PKCS#1 v1.5 in TLS 1.3 (OpenSSL drops those by itself). */
#define MK_SIGALGS \
	"ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:ed25519:ed448:" \
	"rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:" \
	"rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:" \
	"RSA+SHA256:RSA+SHA384:RSA+SHA512"
#define MK_SESSION_TIMEOUT 3600		/* seconds; RFC 9325 allows up to a week */
/*
 * TLS 1.3 NewSessionTicket messages per handshake. OpenSSL sends two so
 * that a browser can open two connections in parallel; a mail client
 * reconnects one session at a time (an IMAP IDLE connection, a POP3 poll,
 * a submission), OpenSSL clients reuse a stateless ticket anyway, and every
 * resumed handshake brings a fresh ticket. Each ticket costs an encoding
 * and decoding of the session, an encryption, an HMAC and a record.
 */
#define MK_TLS13_TICKETS 1

/* The leaves of one context, for matching SNI and grouping pairs. */
struct mk_tls_ctx {
	SSL_CTX *tc_ctx;
	X509 *tc_leaf[MK_MAX_CERTS];
	int tc_line[MK_MAX_CERTS];
	int tc_nleaf;
};

struct mk_tls_policy {
	atomic_int tp_refs;
	enum mk_protocol tp_proto;
	bool tp_alpn_strict;
	struct mk_tls_ctx tp_ctx[MK_MAX_CERTS];	/* [0]: fallback without SNI match */
	int tp_nctx;
	/* Secrets slot on new SSLs; set before the runtime is published. */
	bool tp_capture_secrets;
	unsigned char tp_sid_ctx[SHA256_DIGEST_LENGTH];
	struct mk_ticket_keys *tp_tickets;	/* NULL: OpenSSL's per-context keys */
};

static int policy_err(char *err, size_t errlen, const struct mk_config *cfg, int line,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int policy_err(char *err, size_t errlen, const struct mk_config *cfg, int line,
		      const char *fmt, ...)
{
	char msg[MK_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%d: %s", cfg->cf_path, line, msg);
	ERR_clear_error();
	return -EINVAL;
}

/**
 * mk_tls_policy_alpn_id() - the ALPN protocol id of a mail protocol
 * @proto: protocol of the listener
 *
 * Return: "imap", "pop3" or "smtp" (RFC 7301 registry; submission is "smtp").
 */
const char *mk_tls_policy_alpn_id(enum mk_protocol proto)
{
	switch (proto) {
	case MK_PROTO_IMAP:
		return "imap";
	case MK_PROTO_POP3:
		return "pop3";
	default:
		return "smtp";
	}
}

/*
 * ALPACA defence: a client that speaks ALPN but names no protocol of this
 * port is talking to the wrong service; with alpn = strict it gets alert 120.
 */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct mk_tls_policy *p = arg;
	const char *id = mk_tls_policy_alpn_id(p->tp_proto);
	size_t idlen = strlen(id);
	unsigned int off = 0;

	while (off < inlen) {
		unsigned int len = in[off];

		if (len > inlen - off - 1)
			break;
		if (len == idlen && memcmp(in + off + 1, id, idlen) == 0) {
			*out = in + off + 1;
			*outlen = (unsigned char)len;
			return SSL_TLSEXT_ERR_OK;
		}
		off += 1 + len;
	}
	return p->tp_alpn_strict ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

static int servername_select(SSL *ssl, int *alert, void *arg)
{
	const struct mk_tls_policy *p = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	int i, j;

	if (!name)
		return SSL_TLSEXT_ERR_OK;
	for (i = 0; i < p->tp_nctx; i++) {
		for (j = 0; j < p->tp_ctx[i].tc_nleaf; j++) {
			if (X509_check_host(p->tp_ctx[i].tc_leaf[j], name, 0, 0, NULL) != 1)
				continue;
			if (i > 0 && !SSL_set_SSL_CTX(ssl, p->tp_ctx[i].tc_ctx)) {
				*alert = SSL_AD_INTERNAL_ERROR;
				return SSL_TLSEXT_ERR_ALERT_FATAL;
			}
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;	/* unknown name: the first certificate */
}

static int ctx_new(struct mk_tls_policy *p, const struct mk_listener_cfg *lc, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return -ENOMEM;
	/* Level 2: RSA/DH >= 2048 bits, no SHA-1 certificate signatures. */
	SSL_CTX_set_security_level(ctx, 2);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
	if (!SSL_CTX_set_min_proto_version(ctx, lc->lc_min_version) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, MK_TLS12_CIPHERS) ||
	    !SSL_CTX_set_ciphersuites(ctx, MK_TLS13_SUITES) ||
	    /* No groups key: OpenSSL's default (3.5: X25519MLKEM768 first). */
	    (lc->lc_groups.gc_list[0] &&
	     !SSL_CTX_set1_groups_list(ctx, lc->lc_groups.gc_list)) ||
	    !SSL_CTX_set1_sigalgs_list(ctx, MK_SIGALGS) ||
	    !SSL_CTX_set_max_early_data(ctx, 0) ||
	    !SSL_CTX_set_num_tickets(ctx, MK_TLS13_TICKETS) ||
	    !SSL_CTX_set_session_id_context(ctx, p->tp_sid_ctx, sizeof(p->tp_sid_ctx))) {
		SSL_CTX_free(ctx);
		return -ENOMEM;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_timeout(ctx, MK_SESSION_TIMEOUT);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, p);
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_select);
	SSL_CTX_set_tlsext_servername_arg(ctx, p);
	if (p->tp_capture_secrets)
		SSL_CTX_set_keylog_callback(ctx, mk_tls_keylog_cb);
	*out = ctx;
	return 0;
}

static int name_cmp(const char *const *a, const char *const *b)
{
	return strcasecmp(*a, *b);
}

/* The names a certificate is for: its DNS SANs, else its CN, sorted. */
static int names_of(X509 *x, char *buf, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	STACK_OF(OPENSSL_STRING) *names = sk_OPENSSL_STRING_new(name_cmp);
	char cn[256];
	size_t used = 0;
	int i;

	buf[0] = '\0';
	if (!names) {
		GENERAL_NAMES_free(gens);
		return -ENOMEM;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS)
			sk_OPENSSL_STRING_push(names, (char *)ASN1_STRING_get0_data(g->d.dNSName));
	}
	if (sk_OPENSSL_STRING_num(names) == 0 &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
				      sizeof(cn)) > 0)
		sk_OPENSSL_STRING_push(names, cn);
	sk_OPENSSL_STRING_sort(names);
	for (i = 0; i < sk_OPENSSL_STRING_num(names); i++)
		used += snprintf(buf + used, used < len ? len - used : 0, "%s,",
				 sk_OPENSSL_STRING_value(names, i));
	sk_OPENSSL_STRING_free(names);
	GENERAL_NAMES_free(gens);
	return 0;
}

/*
 * The context for a pair: the one holding the same names and no key of
 * this type yet, or a new one.
 */
static int pick_ctx(struct mk_tls_policy *p, const struct mk_config *cfg,
		    const struct mk_listener_cfg *lc, const struct mk_certpair *cp, X509 *leaf,
		    struct mk_tls_ctx **out, char *err, size_t errlen)
{
	char want[1024], have[1024];
	int i, j, err2;

	err2 = names_of(leaf, want, sizeof(want));
	for (i = 0; !err2 && i < p->tp_nctx; i++) {
		struct mk_tls_ctx *tc = &p->tp_ctx[i];

		err2 = names_of(tc->tc_leaf[0], have, sizeof(have));
		if (err2 || strcmp(want, have) != 0)
			continue;
		for (j = 0; j < tc->tc_nleaf; j++)
			if (EVP_PKEY_get_base_id(X509_get0_pubkey(tc->tc_leaf[j])) ==
			    EVP_PKEY_get_base_id(X509_get0_pubkey(leaf)))
				return policy_err(err, errlen, cfg, cp->cp_line, "certificate %s "
						  "has the same names and key type as the one "
						  "at line %d", cp->cp_cert, tc->tc_line[j]);
		*out = tc;
		return 0;
	}
	if (err2)
		return err2;
	err2 = ctx_new(p, lc, &p->tp_ctx[p->tp_nctx].tc_ctx);
	if (err2)
		return err2;
	*out = &p->tp_ctx[p->tp_nctx++];
	return 0;
}

static X509 *read_leaf(const struct mk_config *cfg, const struct mk_certpair *cp, char *err,
		       size_t errlen)
{
	BIO *bio = BIO_new_file(cp->cp_cert, "r");
	X509 *x;

	if (!bio) {
		policy_err(err, errlen, cfg, cp->cp_line, "cannot open certificate %s: %s",
			   cp->cp_cert, strerror(errno));
		return NULL;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!x)
		policy_err(err, errlen, cfg, cp->cp_line, "%s is not a PEM certificate",
			   cp->cp_cert);
	return x;
}

/**
 * mk_tls_read_key() - read the private key of a pair
 * @cfg:    the configuration (for its name in messages)
 * @cp:     the pair
 * @err:    "FILE:LINE: message" on failure
 * @errlen: size of @err
 *
 * Return: the key, or NULL with @err set (unreadable, not an unencrypted
 * PEM key).
 */
EVP_PKEY *mk_tls_read_key(const struct mk_config *cfg, const struct mk_certpair *cp,
			  char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(cp->cp_key, "r");
	EVP_PKEY *pkey;

	if (!bio) {
		policy_err(err, errlen, cfg, cp->cp_line, "cannot open private key %s: %s",
			   cp->cp_key, strerror(errno));
		return NULL;
	}
	/* No passphrase callback: an encrypted key must not prompt a daemon. */
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (!pkey)
		policy_err(err, errlen, cfg, cp->cp_line, "%s is not an unencrypted PEM private "
			   "key", cp->cp_key);
	return pkey;
}

/*
 * The key of a pair: read here, or, when the key process holds the keys,
 * one that asks it to sign (the agent never reads a private key then).
 */
static int pair_key(const struct mk_config *cfg, const struct mk_certpair *cp, X509 *leaf,
		    EVP_PKEY **out, char *err, size_t errlen)
{
	char why[MK_ERR_MAX];

	if (mk_keyproc_enabled()) {
		*out = mk_keyproc_pkey(leaf, why, sizeof(why));
		if (!*out)
			return policy_err(err, errlen, cfg, cp->cp_line, "private key %s for "
					  "certificate %s: %s", cp->cp_key, cp->cp_cert, why);
		return 0;
	}
	*out = mk_tls_read_key(cfg, cp, err, errlen);
	if (!*out)
		return -EINVAL;
	if (X509_check_private_key(leaf, *out) != 1) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return policy_err(err, errlen, cfg, cp->cp_line, "private key %s does not match "
				  "certificate %s", cp->cp_key, cp->cp_cert);
	}
	return 0;
}

/* Load one pair: leaf and chain from the certificate file, then its key. */
static int load_pair(struct mk_tls_policy *p, const struct mk_config *cfg,
		     const struct mk_listener_cfg *lc, const struct mk_certpair *cp,
		     char *err, size_t errlen)
{
	struct mk_tls_ctx *tc;
	EVP_PKEY *pkey = NULL;
	X509 *leaf;
	int ret;

	leaf = read_leaf(cfg, cp, err, errlen);
	if (!leaf)
		return -EINVAL;
	ret = pair_key(cfg, cp, leaf, &pkey, err, errlen);
	if (ret)
		goto out_leaf;
	ret = pick_ctx(p, cfg, lc, cp, leaf, &tc, err, errlen);
	if (ret)
		goto out_key;
	if (SSL_CTX_use_certificate_chain_file(tc->tc_ctx, cp->cp_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(tc->tc_ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(tc->tc_ctx) != 1) {
		unsigned long e = ERR_peek_last_error();

		ret = policy_err(err, errlen, cfg, cp->cp_line, "cannot use certificate %s: %s",
				 cp->cp_cert, e ? ERR_reason_error_string(e) : "unknown error");
		goto out_key;
	}
	tc->tc_line[tc->tc_nleaf] = cp->cp_line;
	tc->tc_leaf[tc->tc_nleaf++] = leaf;
	leaf = NULL;
	ret = 0;
out_key:
	EVP_PKEY_free(pkey);
out_leaf:
	X509_free(leaf);
	return ret;
}

static void policy_free(struct mk_tls_policy *p)
{
	int i, j;

	for (i = 0; i < p->tp_nctx; i++) {
		for (j = 0; j < p->tp_ctx[i].tc_nleaf; j++)
			X509_free(p->tp_ctx[i].tc_leaf[j]);
		SSL_CTX_free(p->tp_ctx[i].tc_ctx);
	}
	mk_ticket_keys_free(p->tp_tickets);
	free(p);
}

/*
 * What every context of the listener shares beyond its certificates: the
 * ticket keys from ticket_keys, the client certificate check.
 */
static int policy_share(struct mk_tls_policy *p, const struct mk_config *cfg,
			const struct mk_listener_cfg *lc, char *err, size_t errlen)
{
	int i, ret;

	if (lc->lc_ticket_keys.pc_path[0]) {
		ret = mk_ticket_keys_load(cfg, lc, &p->tp_tickets, err, errlen);
		if (ret)
			return ret;
	}
	for (i = 0; i < p->tp_nctx; i++) {
		SSL_CTX *ctx = p->tp_ctx[i].tc_ctx;

		if (p->tp_tickets && mk_ticket_keys_attach(ctx, p->tp_tickets))
			return -ENOMEM;
		ret = mk_client_cert_setup(ctx, cfg, lc, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Sessions resume only on the listener that made them, and only under the
 * client certificate policy they were made with: a session from before
 * client_cert = require carries no certificate.
 */
static int policy_sid_ctx(struct mk_tls_policy *p, const struct mk_listener_cfg *lc)
{
	static const char sid_label[] = "mailktls listener ";
	unsigned char mode = (unsigned char)lc->lc_client_cert;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, sid_label, strlen(sid_label)) &&
	     EVP_DigestUpdate(md, lc->lc_name, strlen(lc->lc_name));
	if (ok && lc->lc_client_cert != MK_CLIENT_CERT_NONE)
		ok = EVP_DigestUpdate(md, &mode, 1) &&
		     EVP_DigestUpdate(md, lc->lc_client_ca.pc_path,
				      strlen(lc->lc_client_ca.pc_path));
	ok = ok && EVP_DigestFinal_ex(md, p->tp_sid_ctx, NULL);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -ENOMEM;
}

/* A group the linked OpenSSL does not know is a configuration error (-t). */
static int policy_groups(const struct mk_config *cfg, const struct mk_listener_cfg *lc,
			 char *err, size_t errlen)
{
	const struct mk_groups_cfg *gc = &lc->lc_groups;
	char bad[MK_GROUPS_MAX];
	int ret;

	if (!gc->gc_list[0])
		return 0;
	ret = mk_tls_groups_check(gc->gc_list, bad, sizeof(bad));
	if (ret == -EINVAL)
		return policy_err(err, errlen, cfg, gc->gc_line, "groups: '%s' is not a key-"
				  "exchange group %s knows", bad, OpenSSL_version(OPENSSL_VERSION));
	if (ret)
		snprintf(err, errlen, "%s:%d: out of memory", cfg->cf_path, gc->gc_line);
	return ret;
}

int mk_tls_policy_build(const struct mk_config *cfg, const struct mk_listener_cfg *lc,
			struct mk_tls_policy **out, char *err, size_t errlen)
{
	struct mk_tls_policy *p;
	int i, ret;

	if (lc->lc_ncerts == 0)
		return policy_err(err, errlen, cfg, lc->lc_line, "listener '%s' has no "
				  "certificate", lc->lc_name);
	ret = policy_groups(cfg, lc, err, errlen);
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	atomic_init(&p->tp_refs, 1);
	p->tp_capture_secrets = true;
	p->tp_proto = lc->lc_protocol;
	p->tp_alpn_strict = lc->lc_alpn_strict;
	ret = policy_sid_ctx(p, lc);
	if (ret)
		goto out_free;
	for (i = 0; i < lc->lc_ncerts; i++) {
		ret = load_pair(p, cfg, lc, &lc->lc_certs[i], err, errlen);
		if (ret)
			goto out_free;
	}
	ret = policy_share(p, cfg, lc, err, errlen);
	if (ret)
		goto out_free;
	*out = p;
	return 0;

out_free:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s:%d: out of memory", cfg->cf_path, lc->lc_line);
	policy_free(p);
	return ret;
}

static int policy_ex_idx = -1;
static pthread_once_t policy_ex_once = PTHREAD_ONCE_INIT;

/* SSL_free() drops the reference the SSL held on its policy. */
static void policy_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			   void *argp)
{
	if (ptr)
		mk_tls_policy_put(ptr);
}

static void policy_ex_register(void)
{
	policy_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, policy_ex_free);
}

SSL *mk_tls_policy_new_ssl(struct mk_tls_policy *p)
{
	SSL *ssl;

	pthread_once(&policy_ex_once, policy_ex_register);
	if (policy_ex_idx < 0)
		return NULL;
	ssl = SSL_new(p->tp_ctx[0].tc_ctx);
	if (!ssl)
		return NULL;
	/* The callbacks get @p as argument: it must outlive the SSL. */
	mk_tls_policy_get(p);
	if (!SSL_set_ex_data(ssl, policy_ex_idx, p)) {
		mk_tls_policy_put(p);
		SSL_free(ssl);
		return NULL;
	}
	if (p->tp_capture_secrets && mk_tls_keys_attach(ssl) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/**
 * mk_tls_policy_capture_secrets() - whether new SSLs keep their TLS 1.3
 * traffic secrets for kernel TLS (mk_tls_keys_derive())
 * @p:  policy, not yet used by any thread but the caller's
 * @on: true (as built) to capture them, false when records stay in user space
 */
void mk_tls_policy_capture_secrets(struct mk_tls_policy *p, bool on)
{
	int i;

	p->tp_capture_secrets = on;
	for (i = 0; i < p->tp_nctx; i++)
		SSL_CTX_set_keylog_callback(p->tp_ctx[i].tc_ctx, on ? mk_tls_keylog_cb : NULL);
}

/*
 * OpenSSL's own ticket keys are random per context: a new context would
 * refuse every ticket from before the reload, and each client would pay a
 * full handshake (and a signature) once more. The keys encrypting with the
 * first context are the ones OpenSSL uses (the session context of every
 * SSL); the new contexts take them over. With ticket_keys the file rules.
 */
int mk_tls_policy_keep_tickets(struct mk_tls_policy *p, struct mk_tls_policy *old)
{
	unsigned char keys[80];		/* name, HMAC key, AES key */
	int i, ret = 0;

	if (p->tp_tickets || old->tp_tickets)
		return 0;
	if (SSL_CTX_get_tlsext_ticket_keys(old->tp_ctx[0].tc_ctx, keys, sizeof(keys)) != 1)
		return -EINVAL;
	for (i = 0; i < p->tp_nctx; i++)
		if (SSL_CTX_set_tlsext_ticket_keys(p->tp_ctx[i].tc_ctx, keys, sizeof(keys)) != 1)
			ret = -EINVAL;
	OPENSSL_cleanse(keys, sizeof(keys));
	return ret;
}

/**
 * mk_tls_policy_get() - take a reference
 * @p: policy
 */
void mk_tls_policy_get(struct mk_tls_policy *p)
{
	atomic_fetch_add_explicit(&p->tp_refs, 1, memory_order_relaxed);
}

/**
 * mk_tls_policy_put() - drop a reference; the last one frees the contexts
 * @p: policy, or NULL
 */
void mk_tls_policy_put(struct mk_tls_policy *p)
{
	if (p && atomic_fetch_sub_explicit(&p->tp_refs, 1, memory_order_acq_rel) == 1)
		policy_free(p);
}
