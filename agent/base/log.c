// SPDX-License-Identifier: GPL-2.0
/*
 * One line per event, written with a single write(2) so lines from several
 * workers never interleave on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"

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

static const char *const log_kind_name[MK_LOG_NKINDS] = {
	[MK_LOG_ACCEPT] = "accept_error",
	[MK_LOG_REFUSED] = "refused",
	[MK_LOG_HANDSHAKE] = "handshake_failed",
	[MK_LOG_BACKEND] = "backend_error",
	[MK_LOG_PROXY] = "proxy_refused",
};

/* One limiter per kind, shared by every worker (ratelimit.h: no locks). */
static struct mk_ratelimit log_limit[MK_LOG_NKINDS] = {
	[0 ... MK_LOG_NKINDS - 1] = MK_RATELIMIT_INIT(MK_LOG_BURST, MK_LOG_WINDOW_MS),
};

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

__attribute__((format(printf, 2, 0)))
static void log_vline(int prio, const char *fmt, va_list ap)
{
	char line[1900];

	vsnprintf(line, sizeof(line), fmt, ap);
	log_line(prio, line);
}

/**
 * mk_log() - one log line
 * @prio: syslog priority
 * @fmt:  printf format
 */
void mk_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(prio, fmt, ap);
	va_end(ap);
}

/* The coarse clock is enough for one-second windows and costs no syscall
 * nor TSC read on a path a flood of refusals takes. */
static uint64_t log_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

static void log_suppressed(enum mk_log_kind kind, unsigned int n)
{
	if (n)
		mk_log(LOG_WARNING, "suppressed %u kind=%s window=%us", n, log_kind_name[kind],
		       MK_LOG_WINDOW_MS / 1000);
}

/**
 * mk_log_limited() - a log line of an event that can repeat at the rate
 * clients connect: at most MK_LOG_BURST of a kind a window
 * @kind: which limiter counts it
 * @prio: syslog priority
 * @fmt:  printf format
 *
 * A window that ended with lines suppressed is reported first, as
 * "suppressed N kind=K window=1s".
 */
void mk_log_limited(enum mk_log_kind kind, int prio, const char *fmt, ...)
{
	unsigned int ended;
	bool allowed;
	va_list ap;

	allowed = mk_ratelimit_allow(&log_limit[kind], log_clock_ms(), &ended);
	log_suppressed(kind, ended);
	if (!allowed)
		return;
	va_start(ap, fmt);
	log_vline(prio, fmt, ap);
	va_end(ap);
}

/**
 * mk_log_limited_flush() - report every kind whose window ended with lines
 * suppressed; called from each worker's tick, so the report comes within a
 * second of the window's end even when no further event does
 */
void mk_log_limited_flush(void)
{
	uint64_t now = log_clock_ms();
	int k;

	for (k = 0; k < MK_LOG_NKINDS; k++)
		log_suppressed((enum mk_log_kind)k, mk_ratelimit_flush(&log_limit[k], now));
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

/* A client certificate's subject, inside double quotes: no quote, backslash
 * or control character (the client chose the subject). */
static const char *log_quoted(const char *in, char *out, size_t len)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < len; i++)
		out[i] = ((unsigned char)in[i] >= ' ' && in[i] != 127 && in[i] != '"' &&
			  in[i] != '\\') ? in[i] : '?';
	out[i] = '\0';
	return out;
}

/**
 * mk_log_tls() - the line logged when TLS is established
 * @s: what was negotiated
 */
void mk_log_tls(const struct mk_session *s)
{
	char client[80], sni[256], alpn[64], subject[256], cert[300] = "";
	const char *ktls;

	if (s->ss_ktls_tx && s->ss_ktls_rx)
		ktls = "tx,rx";
	else if (s->ss_ktls_tx)
		ktls = "tx";
	else if (s->ss_ktls_rx)
		ktls = "rx";
	else
		ktls = "off";
	if (s->ss_client_cert)
		snprintf(cert, sizeof(cert), " client_subject=\"%s\" verify=%d",
			 log_quoted(s->ss_client_subject, subject, sizeof(subject)),
			 (int)s->ss_verify);
	mk_log(LOG_INFO,
	       "tls listener=%s client=%s version=%s cipher=%s group=%s sni=%s alpn=%s ktls=%s "
	       "resumed=%s%s",
	       s->ss_listener, mk_sockaddr_str(&s->ss_client, client, sizeof(client)),
	       s->ss_version_name, s->ss_cipher, s->ss_group[0] ? s->ss_group : "-",
	       log_token(s->ss_sni, sni, sizeof(sni)), log_token(s->ss_alpn, alpn, sizeof(alpn)),
	       ktls, s->ss_resumed ? "yes" : "no", cert);
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
