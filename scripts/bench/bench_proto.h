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

#endif
