// SPDX-License-Identifier: GPL-2.0
/*
 * One line per event, written with a single write(2) so lines from several
 * workers never interleave on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum mk_log_target log_target = MK_LOG_STDERR;
static const char *log_ident = "mailktlsd";

/**
 * mk_log_ident() - the program name that starts every line (and the syslog
 * ident); call before mk_log_open()
 * @name: a static string, e.g. "mailktls-milter"
 */
void mk_log_ident(const char *name)
{
	log_ident = name;
}

/**
 * mk_log_open() - choose stderr or syslog (facility mail)
 * @target: where lines go
 */
void mk_log_open(enum mk_log_target target)
{
	log_target = target;
	if (target == MK_LOG_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void log_line(int prio, const char *line)
{
	char buf[2048];
	int n;

	if (log_target == MK_LOG_SYSLOG) {
		syslog(prio, "%s", line);
		return;
	}
	n = snprintf(buf, sizeof(buf), "%s: %s\n", log_ident, line);
	if (n > (int)sizeof(buf) - 1) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

/**
 * mk_log() - one log line
 * @prio: syslog priority
 * @fmt:  printf format
 */
void mk_log(int prio, const char *fmt, ...)
{
	char line[1900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line(prio, line);
}

/* Values come from the network (SNI, ALPN): keep them to one token. */
static const char *log_token(const char *in, char *out, size_t len)
{
	size_t i;

	if (!in || !*in)
		return "-";
	for (i = 0; in[i] && i + 1 < len; i++)
		out[i] = (in[i] > ' ' && in[i] < 127 && in[i] != '=') ? in[i] : '?';
	out[i] = '\0';
	return out;
}

/**
 * mk_log_tls() - the line logged when TLS is established
 * @s: what was negotiated
 */
void mk_log_tls(const struct mk_session *s)
{
	char client[80], sni[256], alpn[64];
	const char *ktls;

	if (s->ss_ktls_tx && s->ss_ktls_rx)
		ktls = "tx,rx";
	else if (s->ss_ktls_tx)
		ktls = "tx";
	else if (s->ss_ktls_rx)
		ktls = "rx";
	else
		ktls = "off";
	mk_log(LOG_INFO,
	       "tls listener=%s client=%s version=%s cipher=%s group=%s sni=%s alpn=%s ktls=%s",
	       s->ss_listener, mk_sockaddr_str(&s->ss_client, client, sizeof(client)),
	       s->ss_version_name, s->ss_cipher, s->ss_group[0] ? s->ss_group : "-",
	       log_token(s->ss_sni, sni, sizeof(sni)), log_token(s->ss_alpn, alpn, sizeof(alpn)),
	       ktls);
}

/**
 * mk_log_close() - the line logged when a connection ends
 * @listener:    listener name
 * @client:      client address
 * @bytes_in:    plaintext bytes from the client
 * @bytes_out:   plaintext bytes to the client
 * @duration_ms: connection lifetime
 * @end:         why it ended
 */
void mk_log_close(const char *listener, const struct sockaddr_storage *client,
		  uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_ms, const char *end)
{
	char addr[80];

	mk_log(LOG_INFO,
	       "close listener=%s client=%s bytes_in=%llu bytes_out=%llu duration=%llu.%03llus end=%s",
	       listener, mk_sockaddr_str(client, addr, sizeof(addr)),
	       (unsigned long long)bytes_in, (unsigned long long)bytes_out,
	       (unsigned long long)(duration_ms / 1000), (unsigned long long)(duration_ms % 1000),
	       end);
}
