/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libmailktls: ask which TLS the client of a connection negotiated with
 * mailktlsd, the TLS agent in front of this mail daemon.
 *
 * Link with `pkg-config --libs libmailktls`.  Every function first asks the
 * mailktls kernel module (generic netlink family "mailktls"), then the
 * agent's query socket: $MAILKTLS_QUERY_SOCKET, or MAILKTLS_QUERY_SOCKET
 * below.  Functions are thread-safe and keep no state between calls.
 *
 * One exchange with the query socket (connect, request, whole answer) takes
 * at most 2 seconds, or $MAILKTLS_QUERY_TIMEOUT_MS milliseconds (1 to 2000;
 * other values mean 2000) for callers that must answer sooner, such as a
 * milter holding up an SMTP session; on expiry the call returns -ETIMEDOUT.
 *
 * Query socket protocol (unix stream socket; one request per connection):
 *   request:  one line of at most MAILKTLS_QUERY_LINE_MAX bytes, ended by
 *             "\n" (a "\r" before it is ignored), sent within 2 seconds:
 *               QUERY PEER <ip>:<port>   the agent's backend socket whose
 *                                        local address this is (what the
 *                                        daemon sees as its peer)
 *               QUERY INODE <n>          the agent's AF_UNIX backend socket
 *                                        with inode n (the daemon's peer,
 *                                        from sock_diag UNIX_DIAG_PEER)
 *               QUERY ADDR <ip>:<port>   the connection of this client
 *               STATUS                   listeners and connection counts
 *               CLAUSE <ip>:<port>       the RFC 8314 section 4.3 clause of
 *                                        this client's connection alone
 *                                        (for MTA configurations)
 *             <ip> is dotted IPv4 or [IPv6].
 *   answer:   "ok" or "error <reason>" (notfound, syntax, toolong), then
 *             key=value lines, then an empty line; the agent closes.
 *             QUERY keys: version (0x0304), version_name, cipher_id
 *             (0x1302), cipher, group, sigalg, sni, alpn, client_subject,
 *             client_cert (0/1), verify, ktls (tx,rx | tx | rx | none),
 *             client (<ip>:<port>), listener.  Bytes below 0x20 and 0x7f
 *             in values are sent as "?".
 *             CLAUSE answers with one line, "tls TLS_AES_256_GCM_SHA384"
 *             (or "tls 0x1302"), and nothing at all when the connection
 *             is unknown or the request malformed.
 *             STATUS keys: module (yes/no), connections, ktls_txrx,
 *             listeners, then one "listener=<name> <listen> <protocol>
 *             <tls>" per listener.
 */
#ifndef MAILKTLS_H
#define MAILKTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAILKTLS_QUERY_SOCKET "/run/mailktls/query.sock"
#define MAILKTLS_QUERY_ENV "MAILKTLS_QUERY_SOCKET"
#define MAILKTLS_QUERY_TIMEOUT_ENV "MAILKTLS_QUERY_TIMEOUT_MS"
#define MAILKTLS_QUERY_LINE_MAX 256
#define MAILKTLS_QUERY_ANSWER_MAX 8192

/* mi_ktls bits (same values as the kernel's MAILKTLS_KTLS_*) */
#define MAILKTLS_INFO_KTLS_TX 0x01
#define MAILKTLS_INFO_KTLS_RX 0x02

/* Where an answer came from. */
enum mailktls_source {
	MAILKTLS_FROM_MODULE = 1,
	MAILKTLS_FROM_QUERY_SOCKET = 2,
};

struct mailktls_info {
	uint16_t mi_version;		/* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	uint16_t mi_cipher_id;		/* IANA number, 0x1302 */
	uint32_t mi_verify;		/* X509_V_OK (0) or the error */
	uint8_t mi_ktls;		/* MAILKTLS_INFO_KTLS_* */
	bool mi_client_cert;		/* the client sent a certificate */
	bool mi_peer;			/* the tag was the peer's of the fd */
	enum mailktls_source mi_source;
	struct sockaddr_storage mi_client; /* AF_UNSPEC when unknown */
	char mi_cipher[64];		/* IANA name, "" when unknown */
	char mi_group[32];
	char mi_sigalg[48];
	char mi_sni[256];
	char mi_alpn[32];
	char mi_client_subject[256];
	char mi_listener[64];
};

/**
 * mailktls_query_fd() - which TLS did the peer of this socket negotiate?
 * @fd:  a connected TCP or AF_UNIX stream socket (e.g. accepted from the
 *       agent's backend connection)
 * @out: the answer
 *
 * Return: 0; -ENOENT when neither the module nor the agent knows the
 * connection; -ENOTSOCK, -EAFNOSUPPORT for other fds; another negative
 * errno on failure.
 */
int mailktls_query_fd(int fd, struct mailktls_info *out);

/**
 * mailktls_query_addr() - which TLS did the client at this address use?
 * @sa:    the client's address and port, AF_INET or AF_INET6
 * @salen: its length
 * @out:   the answer
 *
 * The module answers only CAP_NET_ADMIN callers; others get the answer
 * from the query socket.
 *
 * Return: 0, -ENOENT, -EAFNOSUPPORT, -EINVAL, or another negative errno.
 */
int mailktls_query_addr(const struct sockaddr *sa, socklen_t salen, struct mailktls_info *out);

/**
 * mailktls_received_clause() - the RFC 8314 section 4.3 Received clause
 * @info: a query answer
 * @buf:  receives "tls TLS_AES_256_GCM_SHA384", or "tls 0x1302" when the
 *        registered name is unknown, NUL-terminated
 * @len:  size of @buf
 *
 * Return: the length written (without the NUL), -ENOSPC when @buf is too
 * small (@buf then holds ""), -EINVAL when @info names no cipher at all.
 */
int mailktls_received_clause(const struct mailktls_info *info, char *buf, size_t len);

/**
 * mailktls_version_name() - "TLSv1.2", "TLSv1.3", or "unknown"
 * @version: mi_version
 * Return: a static string.
 */
const char *mailktls_version_name(uint16_t version);

/**
 * mailktls_status() - the agent's STATUS answer, as key=value lines
 * @buf: receives the text, NUL-terminated
 * @len: size of @buf
 *
 * Return: its length, or a negative errno (-ENOENT when no agent listens).
 */
int mailktls_status(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* MAILKTLS_H */
