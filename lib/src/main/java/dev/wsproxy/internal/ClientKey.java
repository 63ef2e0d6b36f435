package dev.wsproxy.internal;

import org.jspecify.annotations.Nullable;

/**
 * The client as the per-address limits ({@code maxConnectionsPerIp}, {@code handshakeRatePerIp}) count it: an IPv4
 * client by its address, an IPv6 client by the block of its first {@code ipv6Prefix} bits (a /64 by default). An IPv6
 * host gets a whole /64 (a home network, a cloud VM): counted by its full address, one client had 2^64 addresses, each
 * with a slot and a rate of its own, while the devices of one home share a /64 as they share a NATed IPv4 address.
 *
 * <p>Only the limits' key: listeners, the access log and the forwarded headers name the client's full address
 * ({@link ClientIdentity#clientIp}). Made once per handshake from the address's bytes, no text; an IPv4 address is
 * kept as its IPv4-mapped IPv6 form ({@code ::ffff:a.b.c.d}), which no IPv6 key can equal: an IPv4-mapped client is
 * read as IPv4 ({@link Cidr#normalize}), and a block keeps {@code ::ffff:0:0/96}'s bits only with a prefix of 96 or
 * more, whose addresses there are IPv4-mapped ones. A client without an IP address (a Unix-domain socket) is counted
 * by the text of its peer, as before.
 *
 * @param high the first 64 bits of the IPv6 block (0 for IPv4)
 * @param low the last 64 bits of the IPv6 block, or {@code ::ffff:} and the IPv4 address
 * @param other the peer's text for a client without an IP address, else {@code null}
 */
record ClientKey(long high, long low, @Nullable String other) {

    private static final long IPV4_MAPPED = 0xFFFFL << 32;

    /** The key of the client {@code identity} names, an IPv6 one by its first {@code ipv6Prefix} bits (1 to 128). */
    static ClientKey of(ClientIdentity identity, int ipv6Prefix) {
        return of(identity.clientBytes, identity.clientIp, ipv6Prefix);
    }

    /**
     * The key of {@code address} (4 or 16 bytes, as {@link Cidr#normalize} gives them), or of {@code text} when there
     * is no address.
     */
    static ClientKey of(byte @Nullable [] address, String text, int ipv6Prefix) {
        if (address == null) {
            return new ClientKey(0, 0, text);
        }
        if (address.length == 4) {
            return new ClientKey(0, IPV4_MAPPED | bits(address, 0, 4), null);
        }
        long high = bits(address, 0, 8);
        long low = bits(address, 8, 16);
        // Shifts of 0 to 63 bits: a shift by 64 would be one by 0 in Java (it is taken mod 64).
        if (ipv6Prefix <= 64) {
            return new ClientKey(high & (-1L << (64 - ipv6Prefix)), 0, null);
        }
        return new ClientKey(high, low & (-1L << (128 - ipv6Prefix)), null);
    }

    private static long bits(byte[] address, int from, int to) {
        long value = 0;
        for (int i = from; i < to; i++) {
            value = value << 8 | (address[i] & 0xFF);
        }
        return value;
    }

    /** The IPv6 block of this key as text, {@code 2001:db8::/64}; for an IPv6 key only. */
    String ipv6Block(int prefix) {
        byte[] network = new byte[16];
        for (int i = 0; i < 8; i++) {
            network[i] = (byte) (high >>> (56 - 8 * i));
            network[8 + i] = (byte) (low >>> (56 - 8 * i));
        }
        return Cidr.text(network) + "/" + prefix;
    }
}
