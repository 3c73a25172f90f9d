// SPDX-License-Identifier: GPL-2.0
/*
 * The moment the handshake is over: record what was negotiated, and hand
 * the record layer to the kernel when it can take it.
 *
 * For the kernel to continue where OpenSSL stopped, three things must hold
 * and are arranged by handshake.c: every byte OpenSSL wrote has been sent
 * (so TLS_TX starts after it, at c_tx_seq), OpenSSL holds no unprocessed
 * byte of the client's (it never reads ahead; records the client pipelined
 * behind its Finished are decrypted here, and TLS_RX starts after them at
 * c_rx_seq), and no read on the socket is queued. Then the SSL object and
 * every key are freed and wiped: after this point no TLS state of the
 * connection is left in user space.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "ktls.h"
#include "log.h"
#include "stage.h"
#include "metrics.h"
#include "registry.h"
#include "tls_client_cert.h"
#include "tls_groups.h"
#include "tls_keys.h"

static void handover_fill_session(struct mk_conn *c, struct mk_session *s)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(c->c_ssl);
	const unsigned char *alpn;
	socklen_t len = sizeof(s->ss_local);
	const char *name;
	unsigned int alpn_len;

	snprintf(s->ss_listener, sizeof(s->ss_listener), "%s", c->c_cfg->lc_name);
	s->ss_client = c->c_client;
	/* Asked here, not kept from accept: only the PROXY header needs it.
	 * Behind a balancer, its header said where the client connected. */
	if (c->c_proxy_dst) {
		s->ss_local = *c->c_proxy_dst;
		free(c->c_proxy_dst);
		c->c_proxy_dst = NULL;
	} else if (c->c_cfg->lc_proxy_v2)
		getsockname(c->c_fd, (struct sockaddr *)&s->ss_local, &len);
	s->ss_version = (uint16_t)SSL_version(c->c_ssl);
	snprintf(s->ss_version_name, sizeof(s->ss_version_name), "%s", SSL_get_version(c->c_ssl));
	s->ss_cipher_id = (uint16_t)(SSL_CIPHER_get_id(cipher) & 0xffff);
	name = SSL_CIPHER_standard_name(cipher);
	snprintf(s->ss_cipher, sizeof(s->ss_cipher), "%s", name ? name : "");
	mk_tls_group_name(c->c_ssl, s->ss_group, sizeof(s->ss_group));
	name = SSL_get_servername(c->c_ssl, TLSEXT_NAMETYPE_host_name);
	snprintf(s->ss_sni, sizeof(s->ss_sni), "%s", name ? name : "");
	SSL_get0_alpn_selected(c->c_ssl, &alpn, &alpn_len);
	if (alpn_len >= sizeof(s->ss_alpn))
		alpn_len = sizeof(s->ss_alpn) - 1;
	memcpy(s->ss_alpn, alpn ? (const char *)alpn : "", alpn ? alpn_len : 0);
	s->ss_alpn[alpn ? alpn_len : 0] = '\0';
	s->ss_resumed = SSL_session_reused(c->c_ssl) == 1;
	mk_client_cert_describe(c->c_ssl, s);
}

/*
 * Records the client sent right behind its Finished are still in OpenSSL's
 * read BIO: decrypt them here, queue the plaintext for the backend, and
 * move the kernel's receive sequence number past them.
 */
static int handover_leftover(struct mk_conn *c)
{
	const uint8_t *p;
	uint8_t *out;
	size_t partial;
	long len;
	int n;

	len = BIO_get_mem_data(c->c_rbio, (char **)&p);
	if (len <= 0)
		return 0;
	c->c_rx_seq += mk_tls_count_records(p, (size_t)len, &partial);
	if (partial)
		return -EPROTO;
	for (;;) {
		out = mk_buf_reserve(&c->c_bout, 16384);
		if (!out)
			return -ENOBUFS;
		n = SSL_read(c->c_ssl, out, 16384);
		if (n <= 0)
			break;
		c->c_bout.b_len += (size_t)n;
	}
	if (!mk_buf_used(&c->c_bout))
		mk_buf_free(&c->c_bout);
	if (SSL_get_error(c->c_ssl, n) == SSL_ERROR_ZERO_RETURN)
		c->c_c2b.d_eof = true;	/* close_notify right after Finished */
	else if (SSL_get_error(c->c_ssl, n) != SSL_ERROR_WANT_READ)
		return -EPROTO;
	/* A post-handshake message (KeyUpdate) or anything OpenSSL wants to
	 * answer would desynchronise the kernel: stay in user space. */
	if (BIO_ctrl_pending(c->c_wbio) || SSL_has_pending(c->c_ssl) ||
	    BIO_ctrl_pending(c->c_rbio))
		return -EPROTO;
	return 0;
}

static int handover_ktls(struct mk_conn *c)
{
	struct mk_tls_dir_keys tx, rx;
	char err[256], addr[80];
	int ret;

	ret = handover_leftover(c);
	if (ret)
		goto out_log;
	ret = mk_tls_keys_derive(c->c_ssl, &tx, &rx);
	if (ret) {
		snprintf(err, sizeof(err), "cannot derive keys: %s", strerror(-ret));
		goto out_wipe;
	}
	tx.dk_seq = c->c_tx_seq;
	rx.dk_seq = c->c_rx_seq;
	ret = mk_ktls_install(c->c_fd, &tx, &rx, err, sizeof(err));
out_wipe:
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
	if (ret)
		goto out_log_err;
	mk_tls_keys_forget(c->c_ssl);
	/* Not a truncated session: keep it in the cache for resumption. */
	SSL_set_shutdown(c->c_ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->c_ssl);
	c->c_ssl = NULL;
	c->c_rbio = c->c_wbio = NULL;
	c->c_ktls = true;
	return 0;

out_log:
	snprintf(err, sizeof(err), "records after Finished cannot be handed over");
out_log_err:
	mk_log(LOG_WARNING, "ktls listener=%s client=%s: %s", c->c_cfg->lc_name,
	       mk_sockaddr_str(&c->c_client, addr, sizeof(addr)), err);
	return ret;
}

/**
 * mk_handover() - the handshake is complete and its output sent: install
 * kernel TLS when the runtime uses it, log the `tls` line, connect the
 * backend
 * @c: the connection
 */
void mk_handover(struct mk_conn *c)
{
	struct mk_session *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s) {
		mk_conn_end(c, "error:no_memory");
		return;
	}
	c->c_session = s;
	handover_fill_session(c, s);
	if (c->c_rt->rt_ktls) {
		ret = handover_ktls(c);
		/* A failure after TLS_TX leaves the socket unusable. */
		if (ret && (c->c_rt->rt_cfg->cf_ktls == MK_KTLS_REQUIRE || ret != -EPROTO)) {
			mk_conn_end(c, "error:ktls:%s", strerror(-ret));
			return;
		}
	}
	s->ss_ktls_tx = s->ss_ktls_rx = c->c_ktls;
	mk_log_tls(s);
	mk_metrics_tls_up(c->c_listener->l_index, s->ss_version_name, s->ss_cipher, s->ss_group,
			  c->c_ktls);
	c->c_tls_counted = true;
	if (c->c_ktls) {
		/* Nothing of the handshake is needed any more. */
		mk_buf_free(&c->c_cin);
		mk_buf_free(&c->c_cout);
	}
	mk_backend_connect(c);
}
