// SPDX-License-Identifier: GPL-2.0
/*
 * STARTTLS listeners: the agent speaks the cleartext dialogue (pretls.c)
 * until the client asks for TLS, then starts the handshake on the same
 * socket. Whatever the client sent after its STARTTLS line, in the same
 * segment or before its ClientHello, is never treated as a command: the
 * buffer is dropped here, and bytes arriving later are fed to the TLS
 * handshake, which fails on them (CVE-2011-0411 class).
 */
#include <errno.h>

#include <sys/socket.h>

#include "log.h"
#include "metrics.h"
#include "pretls.h"
#include "stage.h"

static void starttls_input(struct mk_conn *c);
static void starttls_output_sent(struct mk_conn *c);
static void starttls_timeout(struct mk_conn *c);
static void starttls_free(struct mk_conn *c);

static const struct mk_conn_ops starttls_ops = {
	.h_client_input = starttls_input,
	.h_client_sent = starttls_output_sent,
	.h_timeout = starttls_timeout,
	.h_free = starttls_free,
};

/**
 * mk_starttls_start() - send the greeting of a STARTTLS listener
 * @c: the connection
 *
 * Return: 0, or -ENOMEM.
 */
int mk_starttls_start(struct mk_conn *c)
{
	struct mk_pretls_limits lim = {
		.pl_max_commands = c->c_cfg->lc_pretls_max_commands,
		.pl_max_auth_refusals = c->c_cfg->lc_max_auth_refusals,
	};

	c->c_pretls = mk_pretls_new(c->c_cfg->lc_protocol, c->c_cfg->lc_hostname, &lim);
	if (!c->c_pretls)
		return -ENOMEM;
	mk_conn_set_state(c, MK_CS_PRETLS);
	c->c_ops = &starttls_ops;
	c->c_deadline_ms = mk_now_ms() + c->c_cfg->lc_pretls_timeout_ms;
	if (mk_pretls_greeting(c->c_pretls, &c->c_cout))
		return -ENOBUFS;
	mk_conn_send_client(c);
	mk_conn_recv_client(c);
	return 0;
}

static void starttls_log_events(struct mk_conn *c, const struct mk_pretls_event *ev, size_t n)
{
	char addr[80];
	size_t i;

	for (i = 0; i < n; i++) {
		if (!ev[i].pe_auth_refused)
			continue;
		mk_metrics_add(c->c_listener->l_index, MK_M_AUTH_REFUSED, 1);
		mk_log(LOG_NOTICE, "cleartext_auth_refused listener=%s client=%s command=%s",
		       c->c_cfg->lc_name, mk_sockaddr_str(&c->c_client, addr, sizeof(addr)),
		       ev[i].pe_command);
	}
}

/* The pre-TLS time is up: the protocol's parting line, best effort (the
 * socket is non-blocking and this is the last thing we write). */
static void starttls_timeout(struct mk_conn *c)
{
	if (c->c_pretls && !c->c_csend_busy) {
		mk_buf_reset(&c->c_cout);
		mk_pretls_timeout(c->c_pretls, &c->c_cout);
		send(c->c_fd, mk_buf_head(&c->c_cout), mk_buf_used(&c->c_cout),
		     MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	mk_conn_end(c, "timeout");
}

/* Cleartext bytes from the client, in c->c_cin. */
static void starttls_input(struct mk_conn *c)
{
	struct mk_pretls_event ev[8];
	enum mk_pretls_verdict v;
	size_t consumed, nev;

	/* Replies go to c_cout, which must not move under a send in flight:
	 * the input waits in c_cin until that send completes. */
	if (c->c_csend_busy)
		return;
	do {
		nev = sizeof(ev) / sizeof(ev[0]);
		v = mk_pretls_input(c->c_pretls, mk_buf_head(&c->c_cin), mk_buf_used(&c->c_cin),
				    &consumed, &c->c_cout, ev, &nev);
		starttls_log_events(c, ev, nev);
		mk_buf_consume(&c->c_cin, consumed);
	} while (v == MK_PRETLS_CONTINUE && consumed && mk_buf_used(&c->c_cin));

	if (v == MK_PRETLS_CONTINUE) {
		mk_conn_send_client(c);
		mk_conn_recv_client(c);
		return;
	}
	/* STARTTLS or CLOSE: nothing after that line is ever interpreted. */
	mk_buf_reset(&c->c_cin);
	if (v == MK_PRETLS_STARTTLS)
		c->c_starttls_pending = true;
	else
		c->c_close_after_send = true;
	if (mk_buf_used(&c->c_cout))
		mk_conn_send_client(c);
	else
		starttls_output_sent(c);
}

/* The queued reply went out. */
static void starttls_output_sent(struct mk_conn *c)
{
	if (c->c_close_after_send) {
		mk_conn_end(c, "pretls_close");
		return;
	}
	if (!c->c_starttls_pending) {
		if (mk_buf_used(&c->c_cin))
			starttls_input(c);
		return;
	}
	c->c_starttls_pending = false;
	mk_metrics_add(c->c_listener->l_index, MK_M_STARTTLS, 1);
	starttls_free(c);
	if (mk_handshake_start(c))
		mk_conn_end(c, "error:setup");
}

/* The dialogue's state: at the STARTTLS, or with the connection. */
static void starttls_free(struct mk_conn *c)
{
	mk_pretls_free(c->c_pretls);
	c->c_pretls = NULL;
}
