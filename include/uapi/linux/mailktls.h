/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mailktls: generic netlink interface of mailktls.ko
 *
 * The TLS agent (mailktlsd) terminates TLS, hands the record layer to kTLS
 * and then tags its sockets with what was negotiated.  Any process that holds
 * one end of such a connection (the mail daemon behind the agent) can ask
 * the kernel which TLS its peer used.
 *
 * Family name MAILKTLS_GENL_NAME, version MAILKTLS_GENL_VERSION.  All
 * integers are in host byte order except where noted.
 *
 * Commands
 * --------
 * MAILKTLS_CMD_TAG (CAP_NET_ADMIN in the user namespace owning the netlink
 *	socket's netns, and in the one owning the tagged socket's netns)
 *	Takes MAILKTLS_A_FD (a TCP or AF_UNIX stream socket of the caller) and
 *	the tag attributes (MAILKTLS_A_TLS_VERSION and MAILKTLS_A_CIPHER_ID are
 *	required, the others optional).  Attaches the tag to the socket;
 *	tagging a tagged socket replaces its tag.  The tag lives as long as
 *	the socket is open: closing the last file reference drops it.
 *	Returns an ack (or an errno: EPERM, EBADF, ENOTSOCK, EPROTONOSUPPORT
 *	for other socket types, EINVAL for missing or oversized attributes).
 *
 * MAILKTLS_CMD_UNTAG (as TAG)
 *	Takes MAILKTLS_A_FD.  Removes the tag; ENOENT when there was none.
 *
 * MAILKTLS_CMD_GET (any process)
 *	Takes MAILKTLS_A_FD, a socket of the caller.  Returns the socket's own
 *	tag, or, when it has none, the tag of its peer: for TCP the socket in
 *	the same netns whose 4-tuple is the reverse of this one (a loopback
 *	connection, e.g. the daemon's accepted socket whose peer is the
 *	agent's backend socket), for AF_UNIX stream the connected peer.  The
 *	reply carries every tag attribute that is set, and MAILKTLS_A_PEER
 *	when the tag came from the peer.  ENOENT when neither is tagged.
 *
 * MAILKTLS_CMD_GET_ADDR (CAP_NET_ADMIN over the netlink socket's netns)
 *	Takes MAILKTLS_A_CLIENT_ADDR and MAILKTLS_A_CLIENT_PORT.  Returns the
 *	first live tag in the caller's netns with that client address, as
 *	GET does.  ENOENT when there is none.
 *
 * MAILKTLS_CMD_DUMP (CAP_NET_ADMIN over the netlink socket's netns)
 *	NLM_F_DUMP request without attributes.  Returns one message per live
 *	tag in the caller's netns, attributes as for GET.
 *
 * /proc/net/mailktls shows, per netns, the live tags, totals and the counts
 * by version and by cipher.
 */
#ifndef _UAPI_LINUX_MAILKTLS_H
#define _UAPI_LINUX_MAILKTLS_H

#define MAILKTLS_GENL_NAME	"mailktls"
#define MAILKTLS_GENL_VERSION	1

/* Longest strings, terminating NUL included. */
#define MAILKTLS_CIPHER_MAX	64
#define MAILKTLS_GROUP_MAX	32
#define MAILKTLS_SIGALG_MAX	48
#define MAILKTLS_SNI_MAX	256
#define MAILKTLS_ALPN_MAX	32
#define MAILKTLS_SUBJECT_MAX	256
#define MAILKTLS_LISTENER_MAX	64

/* MAILKTLS_A_KTLS bits */
#define MAILKTLS_KTLS_TX	0x01
#define MAILKTLS_KTLS_RX	0x02

enum mailktls_cmd {
	MAILKTLS_CMD_UNSPEC,
	MAILKTLS_CMD_TAG,
	MAILKTLS_CMD_UNTAG,
	MAILKTLS_CMD_GET,
	MAILKTLS_CMD_GET_ADDR,
	MAILKTLS_CMD_DUMP,

	__MAILKTLS_CMD_MAX,
};

#define MAILKTLS_CMD_MAX (__MAILKTLS_CMD_MAX - 1)

enum mailktls_attr {
	MAILKTLS_A_UNSPEC,
	MAILKTLS_A_FD,			/* u32: a file descriptor of the caller */
	MAILKTLS_A_TLS_VERSION,		/* u16: 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	MAILKTLS_A_CIPHER_ID,		/* u16: IANA cipher suite number */
	MAILKTLS_A_CIPHER_NAME,		/* string: IANA name, TLS_AES_128_GCM_SHA256 */
	MAILKTLS_A_GROUP,		/* string: key exchange group, x25519 */
	MAILKTLS_A_SIGALG,		/* string: signature scheme */
	MAILKTLS_A_SNI,			/* string: server name the client asked for */
	MAILKTLS_A_ALPN,		/* string: negotiated protocol */
	MAILKTLS_A_CLIENT_SUBJECT,	/* string: client certificate subject */
	MAILKTLS_A_VERIFY_RESULT,	/* u32: X509_V_OK (0) or the error */
	MAILKTLS_A_KTLS,		/* u8: MAILKTLS_KTLS_* */
	MAILKTLS_A_CLIENT_ADDR,		/* binary: 4 (IPv4) or 16 (IPv6) bytes */
	MAILKTLS_A_CLIENT_PORT,		/* u16: the client's port */
	MAILKTLS_A_LISTENER,		/* string: agent listener name */
	MAILKTLS_A_PEER,		/* flag: GET answered with the peer's tag */
	MAILKTLS_A_CLIENT_CERT,		/* flag: the client sent a certificate */

	__MAILKTLS_A_MAX,
};

#define MAILKTLS_A_MAX (__MAILKTLS_A_MAX - 1)

#endif /* _UAPI_LINUX_MAILKTLS_H */
