// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the client's records after the handshake (tls_record.c).
 * Byte 0 picks the version (bit 0) and the scan's minimum (bits 1-2). Then
 * control records, each as type, length (one byte), payload, fed to
 * mk_tls_control_record() until a verdict ends the connection; the whole
 * input is also scanned as ciphertext, whole and one byte at a time.
 * Checked beyond the sanitizers: the kept part never exceeds a record
 * header, a fatal verdict always names an alert and clears the fragment,
 * the scan's answer does not depend on how the stream is split.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "tls_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void control(uint16_t version, const uint8_t *p, size_t len)
{
	struct mk_tls_rx rx = { 0 };
	enum mk_tls_control v;
	size_t off = 0, n;
	uint8_t alert;

	while (off + 2 <= len) {
		n = p[off + 1];
		if (n > len - off - 2)
			n = len - off - 2;
		alert = 0xff;
		v = mk_tls_control_record(&rx, version, p[off], p + off + 2, n, &alert);
		if (rx.rx_part_len > sizeof(rx.rx_part))
			abort();
		if (v == MK_TLS_CTL_FATAL && (alert == 0xff || mk_tls_rx_pending(&rx)))
			abort();
		off += 2 + n;
		if (v != MK_TLS_CTL_MORE && v != MK_TLS_CTL_WARNING)
			return;
	}
}

static size_t scan_bytewise(size_t min, const uint8_t *p, size_t len)
{
	struct mk_tls_rx rx = { 0 };
	size_t i;

	for (i = 0; i < len; i++)
		if (mk_tls_rx_scan(&rx, min, p + i, 1) == 0)
			return i;
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t mins[] = { 1, 16, 17, 24 };
	struct mk_tls_rx rx = { 0 };
	size_t min, whole;

	if (size < 1)
		return 0;
	control(data[0] & 1 ? TLS1_3_VERSION : TLS1_2_VERSION, data + 1, size - 1);
	min = mins[(data[0] >> 1) & 3];
	whole = mk_tls_rx_scan(&rx, min, data + 1, size - 1);
	if (whole > size - 1 || (whole < size - 1 && !rx.rx_broken))
		abort();
	if (whole != scan_bytewise(min, data + 1, size - 1))
		abort();
	return 0;
}
