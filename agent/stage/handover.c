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
 * connection is left in user space but, for TLS 1.3 on a kernel that can
 * rekey, the two current traffic secrets (relay_rekey.c).
 *
 * A KeyUpdate among the records behind the Finished is read by OpenSSL
 * here, which steps its own read key: the kernel then starts with the
 * client's next secret, at the number of records after the last KeyUpdate.
 * A request in it is answered by the relay as any other (OpenSSL has not
 * sent its answer: it would do so on its next write, and there is none).
 * Where the kernel cannot rekey, such a connection stays in user space.
 */
#include <ctype.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "ktls.h"
#include "log.h"
#include "relay_rekey.h"
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

/* KeyUpdates among the records behind the Finished, as OpenSSL reads them. */
struct handover_updates {
	unsigned int hu_count;		/* KeyUpdates read */
	unsigned int hu_records;	/* records read since the last one */
	bool hu_requested;		/* one of them asked for ours */
	unsigned int hu_written;	/* records OpenSSL wrote meanwhile */
	bool hu_answered;		/* one was OpenSSL's own KeyUpdate */
};

static void handover_msg_cb(int write_p, int version, int content_type, const void *buf,
			    size_t len, SSL *ssl, void *arg)
{
	struct handover_updates *hu = arg;
	const uint8_t *p = buf;

	if (write_p) {
		if (content_type == SSL3_RT_HEADER)
			hu->hu_written++;
		else if (content_type == SSL3_RT_HANDSHAKE && len == 5 &&
			 p[0] == MK_TLS_HS_KEY_UPDATE)
			hu->hu_answered = true;
		return;
	}
	if (content_type == SSL3_RT_HEADER) {
		hu->hu_records++;
	} else if (content_type == SSL3_RT_HANDSHAKE && len == 5 &&
		   p[0] == MK_TLS_HS_KEY_UPDATE) {
		/* it ends its record (OpenSSL checks): the next one is number 0 */
		hu->hu_count++;
		hu->hu_records = 0;
		hu->hu_requested |= p[4] == 1;
	}
}

/*
 * OpenSSL answered a KeyUpdate that asked for ours at once: its KeyUpdate,
 * the last record under the server's first key, is sent here, and the
 * kernel starts with the next key. Anything else OpenSSL wants to send
 * would desynchronise the kernel: stay in user space.
 */
static int handover_send_answer(struct mk_conn *c, struct handover_updates *hu)
{
	const uint8_t *p;
	long len = BIO_get_mem_data(c->c_wbio, (char **)&p);
	ssize_t n;

	if (len <= 0)
		return 0;
	if (!hu->hu_answered || hu->hu_written != 1 || !mk_ktls_can_rekey())
		return -EPROTO;
	/* right after the handshake's last flight: the socket buffer has room */
	n = send(c->c_fd, p, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EPROTO;		/* nothing sent: OpenSSL sends it later */
	if (n != len)
		return n < 0 ? -errno : -EIO;
	(void)BIO_reset(c->c_wbio);
	return 0;
}

/*
 * Records the client sent right behind its Finished are still in OpenSSL's
 * read BIO: decrypt them here, queue the plaintext for the backend, and
 * move the kernel's receive sequence number past them.
 */
static int handover_leftover(struct mk_conn *c, struct handover_updates *hu)
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
	SSL_set_msg_callback(c->c_ssl, handover_msg_cb);
	SSL_set_msg_callback_arg(c->c_ssl, hu);
	for (;;) {
		out = mk_buf_reserve(&c->c_bout, 16384);
		if (!out)
			break;
		n = SSL_read(c->c_ssl, out, 16384);
		if (n <= 0)
			break;
		c->c_bout.b_len += (size_t)n;
	}
	SSL_set_msg_callback(c->c_ssl, NULL);
	SSL_set_msg_callback_arg(c->c_ssl, NULL);
	if (!out)
		return -ENOBUFS;
	if (hu->hu_count)
		c->c_rx_seq = hu->hu_records;
	if (!mk_buf_used(&c->c_bout))
		mk_buf_free(&c->c_bout);
	if (SSL_get_error(c->c_ssl, n) == SSL_ERROR_ZERO_RETURN)
		c->c_c2b.d_eof = true;	/* close_notify right after Finished */
	else if (SSL_get_error(c->c_ssl, n) != SSL_ERROR_WANT_READ)
		return -EPROTO;
	if (SSL_has_pending(c->c_ssl) || BIO_ctrl_pending(c->c_rbio))
		return -EPROTO;
	return handover_send_answer(c, hu);
}

static int handover_ktls(struct mk_conn *c)
{
	struct handover_updates hu = { 0 };
	struct mk_tls_dir_keys tx, rx;
	char err[256], addr[80];
	int ret;

	ret = handover_leftover(c, &hu);
	if (ret)
		goto out_log;
	ret = mk_tls_keys_derive(c->c_ssl, &tx, &rx);
	if (ret) {
		snprintf(err, sizeof(err), "cannot derive keys: %s", strerror(-ret));
		goto out_wipe;
	}
	ret = mk_rekey_attach(c, c->c_ssl, hu.hu_count, hu.hu_answered,
			      hu.hu_requested && !hu.hu_answered, &rx, &tx);
	if (ret) {
		snprintf(err, sizeof(err), "cannot keep the traffic secrets: %s", strerror(-ret));
		if (ret == -ENOTSUP)	/* a KeyUpdate the kernel cannot follow */
			ret = -EPROTO;
		goto out_wipe;
	}
	tx.dk_seq = hu.hu_answered ? 0 : c->c_tx_seq;
	rx.dk_seq = c->c_rx_seq;
	ret = mk_ktls_install(c->c_fd, &tx, &rx, err, sizeof(err));
out_wipe:
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
	if (ret) {
		mk_rekey_free(c);
		goto out_log_err;
	}
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
