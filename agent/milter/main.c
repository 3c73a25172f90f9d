// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls-milter: for every message on a connection that came through
 * mailktlsd, a Received header for the hop MUA -> mailktlsd with the
 * RFC 8314 section 4.3 "tls" clause, directly below the MTA's own Received
 * header (Postfix hides its own from milters: index 1 is right below it).
 *
 * Fail open: a connection no one knows, a missing macro or a silent agent
 * costs one log line and no header; no message is ever rejected or held
 * longer than the query timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmilter/mfapi.h>

#include "log.h"
#include "lookup.h"
#include "mailktls.h"
#include "received.h"
#include "session.h"

#define MK_MILTER_NAME "mailktls-milter"
#define MK_MILTER_TIMEOUT_MS_DEFAULT "500"
#define MK_MILTER_INDEX_MAX 16

/*
 * Where the header goes, counted as smfi_insheader() counts: 1 is right
 * below the MTA's own Received header. Set once in main(), read-only after.
 */
static int mk_insert_index = 1;

/*
 * One per SMTP connection, from connect to close. libmilter runs the
 * callbacks of one connection one after the other, never at once, so no
 * lock is needed.
 */
struct mk_mconn {
	struct sockaddr_storage mc_client;	/* AF_UNSPEC: no usable macros */
	char mc_clause[MK_LOOKUP_CLAUSE_MAX];	/* "": the agent does not know it */
	char mc_client_name[MK_RCV_DOMAIN_MAX + 1];
	char mc_helo[MK_RCV_DOMAIN_MAX + 1];	/* "": none, or longer than a domain */
	bool mc_auth;				/* this message's client authenticated */
};

static void mk_copy_name(char *dst, size_t len, const char *src)
{
	if (!src || strnlen(src, len) >= len)
		src = "";
	strcpy(dst, src);
}

static const char *mk_macro_state(const char *v)
{
	return v && *v ? "set" : "missing";
}

static const char *mk_err_name(int err)
{
	switch (err) {
	case -ENOENT:
		return "notfound";
	case -ETIMEDOUT:
		return "timeout";
	default:
		return strerror(-err);
	}
}

/* Find the connection once; every message on it reuses the answer. */
static void mk_mconn_lookup(SMFICTX *ctx, struct mk_mconn *mc)
{
	const char *addr = smfi_getsymval(ctx, "{client_addr}");
	const char *port = smfi_getsymval(ctx, "{client_port}");
	char client[INET6_ADDRSTRLEN + 16];
	const char *source = "-";
	int err;

	err = mk_lookup_client(addr, port, &mc->mc_client);
	if (err) {
		/* Values from the MTA, but they end up in our log: not echoed. */
		mc->mc_client.ss_family = AF_UNSPEC;
		mk_log(LOG_NOTICE,
		       "nomacros client_addr=%s client_port=%s reason=%s: no Received header (milter_connect_macros needs {client_addr} {client_port})",
		       mk_macro_state(addr), mk_macro_state(port),
		       err == -ENOENT ? "missing" : "malformed");
		return;
	}
	mk_sockaddr_str(&mc->mc_client, client, sizeof(client));
	err = mk_lookup_clause(&mc->mc_client, mc->mc_clause, sizeof(mc->mc_clause), &source);
	if (err < 0) {
		mc->mc_clause[0] = '\0';
		mk_log(LOG_INFO, "notls client=%s reason=%s: no Received header", client,
		       mk_err_name(err));
		return;
	}
	mk_log(LOG_INFO, "found client=%s %s source=%s", client, mc->mc_clause, source);
}

static sfsistat mk_cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct mk_mconn *mc = calloc(1, sizeof(*mc));
	const char *name;

	if (!mc) {
		mk_log(LOG_ERR, "out of memory: connection passed without a header");
		return SMFIS_ACCEPT;
	}
	name = smfi_getsymval(ctx, "{client_name}");
	mk_copy_name(mc->mc_client_name, sizeof(mc->mc_client_name), name ? name : hostname);
	mk_mconn_lookup(ctx, mc);
	if (smfi_setpriv(ctx, mc) != MI_SUCCESS) {
		free(mc);
		return SMFIS_ACCEPT;
	}
	/* Nothing to add on this connection: let the MTA skip us. */
	return mc->mc_clause[0] ? SMFIS_CONTINUE : SMFIS_ACCEPT;
}

static sfsistat mk_cb_helo(SMFICTX *ctx, char *helohost)
{
	struct mk_mconn *mc = smfi_getpriv(ctx);

	if (mc)
		mk_copy_name(mc->mc_helo, sizeof(mc->mc_helo), helohost);
	return SMFIS_CONTINUE;
}

static sfsistat mk_cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct mk_mconn *mc = smfi_getpriv(ctx);
	const char *who = smfi_getsymval(ctx, "{auth_authen}");

	if (mc)
		mc->mc_auth = who && *who;
	return SMFIS_CONTINUE;
}

static sfsistat mk_cb_eom(SMFICTX *ctx)
{
	struct mk_mconn *mc = smfi_getpriv(ctx);
	char value[MK_RCV_VALUE_MAX];
	struct mk_received rv;
	int n;

	if (!mc || !mc->mc_clause[0])
		return SMFIS_CONTINUE;
	rv = (struct mk_received){
		.rv_helo = mc->mc_helo,
		.rv_client_name = mc->mc_client_name,
		.rv_client = &mc->mc_client,
		.rv_by = smfi_getsymval(ctx, "j"),
		.rv_auth = mc->mc_auth,
		.rv_clause = mc->mc_clause,
		.rv_time = time(NULL),
	};
	n = mk_rcv_build(&rv, value, sizeof(value));
	if (n < 0) {
		mk_log(LOG_WARNING, "noheader reason=%s: is j in milter_connect_macros?",
		       n == -EINVAL ? "no_valid_hostname" : "too_long");
		return SMFIS_CONTINUE;
	}
	if (smfi_insheader(ctx, mk_insert_index, "Received", value) != MI_SUCCESS)
		mk_log(LOG_WARNING, "insheader failed: message passed without the header");
	return SMFIS_CONTINUE;
}

static sfsistat mk_cb_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

/* Only connect, HELO, MAIL and end of message matter to us. */
static sfsistat mk_cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
				unsigned long f2, unsigned long f3, unsigned long *pf0,
				unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long skip = SMFIP_NORCPT | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY |
			     SMFIP_NOUNKNOWN | SMFIP_NODATA;

	if (!(f0 & SMFIF_ADDHDRS))
		return SMFIS_REJECT;
	*pf0 = SMFIF_ADDHDRS;
	*pf1 = f1 & skip;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static struct smfiDesc mk_milter = {
	.xxfi_name = MK_MILTER_NAME,
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS,
	.xxfi_connect = mk_cb_connect,
	.xxfi_helo = mk_cb_helo,
	.xxfi_envfrom = mk_cb_envfrom,
	.xxfi_eom = mk_cb_eom,
	.xxfi_close = mk_cb_close,
	.xxfi_negotiate = mk_cb_negotiate,
};

static void mk_usage(FILE *f)
{
	fprintf(f,
		"usage: " MK_MILTER_NAME " -l inet:PORT@ADDR|unix:/path [-q QUERY_SOCKET]\n"
		"       [-t QUERY_TIMEOUT_MS] [-i INDEX] [-L stderr|syslog]\n"
		"  -l  where the MTA connects (libmilter syntax)\n"
		"  -q  mailktlsd's query socket (default $" MAILKTLS_QUERY_ENV " or "
		MAILKTLS_QUERY_SOCKET ")\n"
		"  -t  longest wait for the agent's answer, 1..2000 ms (default "
		MK_MILTER_TIMEOUT_MS_DEFAULT ")\n"
		"  -i  insert the header below this many trace headers (default 1: the MTA's;\n"
		"      2 behind a relay that adds its own, e.g. Dovecot submission)\n"
		"  -L  log to stderr (default) or syslog (facility mail)\n");
}

int main(int argc, char **argv)
{
	const char *conn = NULL, *timeout = MK_MILTER_TIMEOUT_MS_DEFAULT;
	enum mk_log_target target = MK_LOG_STDERR;
	char *end;
	long ms;
	int opt;

	while ((opt = getopt(argc, argv, "l:q:t:i:L:hV")) != -1) {
		switch (opt) {
		case 'l':
			conn = optarg;
			break;
		case 'q':
			setenv(MAILKTLS_QUERY_ENV, optarg, 1);
			break;
		case 't':
			timeout = optarg;
			break;
		case 'i':
			mk_insert_index = (int)strtol(optarg, &end, 10);
			if (*end || mk_insert_index < 1 || mk_insert_index > MK_MILTER_INDEX_MAX)
				goto usage;
			break;
		case 'L':
			if (!strcmp(optarg, "syslog"))
				target = MK_LOG_SYSLOG;
			else if (strcmp(optarg, "stderr"))
				goto usage;
			break;
		case 'V':
			printf(MK_MILTER_NAME " " MAILKTLS_VERSION "\n");
			return 0;
		case 'h':
			mk_usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	ms = strtol(timeout, &end, 10);
	if (!conn || optind != argc || *end || ms < 1 || ms > 2000)
		goto usage;
	/* Read by libmailktls on every query; set before any thread exists. */
	setenv(MAILKTLS_QUERY_TIMEOUT_ENV, timeout, 1);
	mk_log_ident(MK_MILTER_NAME);
	mk_log_open(target);
	if (smfi_setconn((char *)conn) != MI_SUCCESS || smfi_register(mk_milter) != MI_SUCCESS) {
		mk_log(LOG_ERR, "cannot use %s", conn);
		return 1;
	}
	if (smfi_opensocket(true) != MI_SUCCESS) {
		mk_log(LOG_ERR, "cannot listen on %s", conn);
		return 1;
	}
	mk_log(LOG_INFO, "listening on %s, query socket %s, query timeout %ld ms, header index %d",
	       conn, getenv(MAILKTLS_QUERY_ENV) ? getenv(MAILKTLS_QUERY_ENV) : MAILKTLS_QUERY_SOCKET,
	       ms, mk_insert_index);
	if (smfi_main() != MI_SUCCESS) {
		mk_log(LOG_ERR, "milter loop failed");
		return 1;
	}
	mk_log(LOG_INFO, "stopped");
	return 0;
usage:
	mk_usage(stderr);
	return 2;
}
