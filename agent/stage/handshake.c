// SPDX-License-Identifier: GPL-2.0
/*
 * The TLS handshake, in user space, with OpenSSL driven over memory BIOs:
 * bytes the ring received go into the read BIO, what OpenSSL writes comes
 * out of the write BIO and is sent by the ring. OpenSSL never touches the
 * socket, so the agent sees every byte and knows exactly where the
 * handshake ends in both directions: that is what lets the kernel take
 * over at the right record sequence numbers (handover.c).
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <openssl/err.h>

#include "keyproc.h"
#include "log.h"
#include "metrics.h"
#include "relay_rekey.h"
#include "stage.h"
#include "tls_keys.h"

static void handshake_input(struct mk_conn *c);
static void handshake_step(struct mk_conn *c);
static void handshake_output_sent(struct mk_conn *c);
static void handshake_signed(struct mk_conn *c, enum mk_op op, int res);
static void handshake_free(struct mk_conn *c);

static const struct mk_conn_ops handshake_ops = {
	.h_client_input = handshake_input,
	.h_client_sent = handshake_output_sent,
	.h_complete = handshake_signed,
	.h_free = handshake_free,
};

/* By OpenSSL's reason, as a label: "unsupported protocol" -> unsupported_protocol. */
static void handshake_count_failure(struct mk_conn *c, unsigned long e)
{
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	char token[48];
	size_t i;

	for (i = 0; r && r[i] && i + 1 < sizeof(token); i++)
		token[i] = isalnum((unsigned char)r[i]) ? (char)tolower((unsigned char)r[i]) : '_';
	token[i] = '\0';
	c->c_handshake_failure_counted = true;
	mk_metrics_handshake_failed(c->c_listener->l_index, token[0] ? token : "unknown");
}

static void handshake_failed(struct mk_conn *c)
{
	unsigned long e = ERR_peek_last_error();
	char reason[200] = "unknown", addr[80];

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	handshake_count_failure(c, e);
	ERR_clear_error();
	mk_log_limited(MK_LOG_HANDSHAKE, LOG_NOTICE,
		       "handshake failed listener=%s client=%s reason=\"%s\"", c->c_cfg->lc_name,
		       mk_sockaddr_str(&c->c_client, addr, sizeof(addr)), reason);
	snprintf(c->c_end, sizeof(c->c_end), "error:handshake");
	/* The alert OpenSSL wrote (protocol_version, no_application_protocol,
	 * ...) is owed to the client before we close. */
	if (mk_conn_drain_wbio(c) > 0) {
		c->c_close_after_send = true;
		mk_conn_send_client(c);
		return;
	}
	mk_conn_end(c, "error:handshake");
}

/**
 * mk_handshake_start() - begin the TLS handshake on an accepted connection
 * @c: the connection
 *
 * Return: 0, or -ENOMEM.
 */
int mk_handshake_start(struct mk_conn *c)
{
	struct mk_tls_policy *pol = c->c_rt->rt_policies[c->c_listener->l_index];

	c->c_ssl = mk_tls_policy_new_ssl(pol);
	if (!c->c_ssl)
		return -ENOMEM;
	/* OpenSSL's record buffers (two of 16 KiB and more) only while a
	 * record is in them: a connection that waits keeps none. With keys
	 * in a key process, the handshake runs as an async job that pauses
	 * while the signature is asked (keyproc_chan.c). */
	SSL_set_mode(c->c_ssl, SSL_MODE_RELEASE_BUFFERS |
				   (mk_keyproc_enabled() ? SSL_MODE_ASYNC : 0));
	c->c_rbio = BIO_new(BIO_s_mem());
	c->c_wbio = BIO_new(BIO_s_mem());
	if (!c->c_rbio || !c->c_wbio) {
		BIO_free(c->c_rbio);
		BIO_free(c->c_wbio);
		c->c_rbio = c->c_wbio = NULL;
		return -ENOMEM;
	}
	/* A read BIO that is empty means "come back later", not EOF. */
	BIO_set_mem_eof_return(c->c_rbio, -1);
	SSL_set_bio(c->c_ssl, c->c_rbio, c->c_wbio);
	SSL_set_accept_state(c->c_ssl);
	mk_conn_set_state(c, MK_CS_HANDSHAKE);
	c->c_ops = &handshake_ops;
	c->c_deadline_ms = mk_now_ms() + c->c_cfg->lc_handshake_timeout_ms;
	mk_buf_reset(&c->c_cin);
	mk_conn_recv_client(c);
	return 0;
}

/*
 * The handshake is complete. TLS 1.2: the only record under the new keys in
 * each direction was the Finished, so both sequence numbers are 1, whether
 * the handshake was full or resumed. TLS 1.3: the client's application
 * records start at 0; ours start after the records OpenSSL wrote with the
 * final flight (NewSessionTicket messages), counted here.
 */
static void handshake_complete(struct mk_conn *c, const uint8_t *final_out, size_t final_len)
{
	size_t partial;

	c->c_handshake_done = true;
	c->c_deadline_ms = mk_now_ms() + c->c_cfg->lc_handshake_timeout_ms;
	if (SSL_version(c->c_ssl) == TLS1_3_VERSION) {
		c->c_tx_seq = mk_tls_count_records(final_out, final_len, &partial);
		c->c_rx_seq = 0;
	} else {
		c->c_tx_seq = 1;
		c->c_rx_seq = 1;
	}
}

/* After the handshake, with kTLS ahead: wait until the bytes OpenSSL has
 * but did not use end on a record boundary (handover.c reads them). */
static bool handshake_leftover_complete(struct mk_conn *c)
{
	const uint8_t *p;
	size_t partial;
	long len;

	if (!c->c_rt->rt_ktls)
		return true;
	len = BIO_get_mem_data(c->c_rbio, (char **)&p);
	if (len <= 0)
		return true;
	mk_tls_count_records(p, (size_t)len, &partial);
	c->c_recv_limit = partial;
	return partial == 0;
}

static void handshake_proceed(struct mk_conn *c)
{
	if (c->c_csend_busy || mk_buf_used(&c->c_cout))
		return;
	if (!handshake_leftover_complete(c)) {
		mk_conn_recv_client(c);
		return;
	}
	c->c_recv_limit = 0;
	mk_handover(c);
}

/* Bytes arrived from the client during the handshake, in c->c_cin. */
static void handshake_input(struct mk_conn *c)
{
	/* What OpenSSL answers goes to c_cout, which must not move under a
	 * send in flight: the input waits in c_cin until that send is done. */
	if (c->c_csend_busy || SSL_waiting_for_async(c->c_ssl))
		return;
	if (BIO_write(c->c_rbio, mk_buf_head(&c->c_cin), (int)mk_buf_used(&c->c_cin)) !=
	    (int)mk_buf_used(&c->c_cin)) {
		mk_conn_end(c, "error:no_memory");
		return;
	}
	mk_buf_reset(&c->c_cin);
	if (c->c_handshake_done) {
		handshake_proceed(c);
		return;
	}
	handshake_step(c);
}

/* Drive OpenSSL on what is in the read BIO. */
static void handshake_step(struct mk_conn *c)
{
	size_t out_before;
	int ret, err;

	out_before = mk_buf_used(&c->c_cout);
	ERR_clear_error();
	mk_keyproc_set_waiter(c);
	ret = SSL_do_handshake(c->c_ssl);
	mk_keyproc_set_waiter(NULL);
	if (ret != 1) {
		err = SSL_get_error(c->c_ssl, ret);
		/* A signature is asked of the key process: the answer runs
		 * handshake_signed(); client bytes meanwhile wait in c_cin. */
		if (err == SSL_ERROR_WANT_ASYNC)
			return;
		if (err != SSL_ERROR_WANT_READ) {
			handshake_failed(c);
			return;
		}
		if (mk_conn_drain_wbio(c) < 0) {
			mk_conn_end(c, "error:no_memory");
			return;
		}
		mk_conn_send_client(c);
		mk_conn_recv_client(c);
		return;
	}
	/* The relay's SSL_read and SSL_write need no job. */
	SSL_clear_mode(c->c_ssl, SSL_MODE_ASYNC);
	if (mk_conn_drain_wbio(c) < 0) {
		mk_conn_end(c, "error:no_memory");
		return;
	}
	handshake_complete(c, mk_buf_head(&c->c_cout) + out_before,
			   mk_buf_used(&c->c_cout) - out_before);
	/*
	 * The final flight (TLS 1.3: the NewSessionTicket) leaves now, never
	 * corked with MSG_MORE for bytes that may follow: after STARTTLS the
	 * client speaks first, so nothing follows until it does, and a client
	 * with Nagle on holds its first command until this flight's segment
	 * acknowledges its Finished: the delayed-ACK timer, 40 ms, every time.
	 */
	if (mk_buf_used(&c->c_cout))
		mk_conn_send_client(c);
	else
		handshake_proceed(c);
}

/* Everything queued for the client was sent. */
static void handshake_output_sent(struct mk_conn *c)
{
	if (c->c_close_after_send) {
		mk_conn_end(c, "%s", c->c_end[0] ? c->c_end : "error:handshake");
		return;
	}
	/* A job paused meanwhile: resumed now (it pauses again if its
	 * answer is not in yet). */
	if (SSL_waiting_for_async(c->c_ssl))
		handshake_signed(c, MK_OP_KEYPROC, 0);
	else if (mk_buf_used(&c->c_cin))
		handshake_input(c);
	else if (c->c_handshake_done)
		handshake_proceed(c);
}

/* The key process answered (or the signature failed): the paused job goes
 * on where it stopped. */
static void handshake_signed(struct mk_conn *c, enum mk_op op, int res)
{
	/* What OpenSSL writes goes to c_cout, which must not move under a
	 * send in flight: handshake_output_sent() comes back here. */
	if (op != MK_OP_KEYPROC || c->c_state == MK_CS_CLOSING || c->c_csend_busy)
		return;
	handshake_step(c);
	/* Client bytes that came while the job was paused. */
	if (!SSL_waiting_for_async(c->c_ssl) && !c->c_handshake_done && mk_buf_used(&c->c_cin))
		handshake_input(c);
}

/* A connection that ends while its job is paused: the job is run to its
 * end (it sees the signature cancelled), or OpenSSL would keep it. */
static void handshake_free(struct mk_conn *c)
{
	mk_rekey_free(c);	/* ended after the handover, before the backend */
	if (!c->c_ssl || !SSL_waiting_for_async(c->c_ssl))
		return;
	mk_keyproc_cancel(c);
	SSL_do_handshake(c->c_ssl);
	ERR_clear_error();
}
