/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What bench_backend and bench_client share.
 *
 * The backend greets every connection like an IMAP server that has just
 * logged the user in: an untagged OK and a tagged OK with a CAPABILITY code.
 * mailktlsd's capability filter (protocol = imap) holds backend bytes until
 * a line ends and stops filtering after the first tagged OK [CAPABILITY];
 * with this greeting every proxy then relays the benchmark bytes untouched,
 * which is the steady state of a mail session. The other proxies just pass
 * the greeting through; the client reads it before its first request.
 */
#ifndef BENCH_PROTO_H
#define BENCH_PROTO_H

#define BENCH_GREETING "* OK bench backend ready\r\nb0 OK [CAPABILITY IMAP4rev1] logged in\r\n"

/*
 * The idle states measured besides the logged-in one (bench_backend's
 * second argument, bench_client idle's fifth): "greet", Dovecot's greeting
 * of a client that has not logged in yet (the capability filter stays
 * active behind it); "silent", a backend that accepts and says nothing (a
 * slow daemon, or a mass reconnect the daemon has not caught up with).
 */
#define BENCH_GREETING_PRELOGIN                                                           \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "     \
	"AUTH=PLAIN] Dovecot (Debian) ready.\r\n"

#endif
