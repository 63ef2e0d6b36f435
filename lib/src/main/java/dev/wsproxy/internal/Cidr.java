package dev.wsproxy.internal;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.List;
import java.util.Locale;

import org.jspecify.annotations.Nullable;

/** An address block, IPv4 or IPv6; IPv4-mapped IPv6 addresses match IPv4 blocks. Immutable. */
public final class Cidr {

    private final byte[] network;
    private final int prefix;
    private final String text;

    private Cidr(byte[] network, int prefix, String text) {
        this.network = network;
        this.prefix = prefix;
        this.text = text;
    }

    /**
     * Parses {@code 10.0.0.0/8}, {@code 192.168.1.7}, {@code fd00::/8} or {@code ::1}; no host names. An IPv4-mapped
     * block ({@code ::ffff:10.0.0.0/104}) is its IPv4 block ({@code 10.0.0.0/8}, the prefix less 96), as mapped
     * addresses are read as IPv4 ({@link #literal}); its prefix is 96 to 128, since a shorter one would also cover
     * addresses that are not IPv4-mapped.
     */
    public static Cidr parse(String value) {
        String trimmed = value.trim();
        int slash = trimmed.indexOf('/');
        String address = slash < 0 ? trimmed : trimmed.substring(0, slash);
        byte[] bytes = literal(address);
        if (bytes == null) {
            throw new IllegalArgumentException("cidr: '" + value + "' (expected: an IP address or block, like 10.0.0.0/8)");
        }
        // literal() reads an IPv4-mapped address as its 4 bytes; its prefix still counts the 96 bits before them.
        int mappedBits = bytes.length == 4 && address.indexOf(':') >= 0 ? 96 : 0;
        int bits = mappedBits + bytes.length * 8;
        int prefix;
        try {
            prefix = slash < 0 ? bits : Integer.parseInt(trimmed.substring(slash + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("cidr: '" + value + "' (expected: a prefix length after /)");
        }
        if (prefix < mappedBits || prefix > bits) {
            throw new IllegalArgumentException("cidr: '" + value + "' (expected: a prefix length from " + mappedBits
                    + " to " + bits + (mappedBits == 0 ? ")" : " for an IPv4-mapped address, like ::ffff:10.0.0.0/104)"));
        }
        return new Cidr(bytes, prefix - mappedBits, trimmed);
    }

    /**
     * A URI host in one spelling for one host: an IPv6 literal in brackets in its RFC 5952 form ({@code [::1]} for
     * {@code [0:0:0:0:0:0:0:1]}), any other host in lower case (host names are case-insensitive).
     */
    public static String canonicalHost(String host) {
        byte[] literal = host.startsWith("[") ? literal(host) : null;
        return literal != null && literal.length == 16 ? "[" + text(literal) + "]" : host.toLowerCase(Locale.ROOT);
    }

    /**
     * The RFC 5952 text of an IPv6 address written without brackets ({@code ::1} for {@code 0:0:0:0:0:0:0:1} or
     * {@code 0::1}), an IPv4-mapped one kept as IPv6 and written in hex as browsers write it ({@code ::ffff:7f00:1} for
     * {@code ::FFFF:127.0.0.1}); {@code null} for anything else, a zone ({@code %eth0}) included. Never looks a name
     * up: text without a {@code :} is refused before {@link #literal} is asked.
     */
    static @Nullable String ipv6Text(String address) {
        if (address.indexOf(':') < 0 || address.indexOf('%') >= 0) {
            return null;
        }
        byte[] bytes = literal("[" + address + "]");
        if (bytes != null && bytes.length == 4) { // literal() reads an IPv4-mapped address as its IPv4 one
            byte[] mapped = new byte[16];
            mapped[10] = (byte) 0xFF;
            mapped[11] = (byte) 0xFF;
            System.arraycopy(bytes, 0, mapped, 12, 4);
            bytes = mapped;
        }
        return bytes == null ? null : text(bytes);
    }

    /**
     * The bytes of an IP literal, IPv4-mapped IPv6 reduced to IPv4; {@code null} for anything else. Never looks a name
     * up: IPv4 is parsed here (exactly four decimal octets), IPv6 only as a bracketed literal.
     */
    static byte @Nullable [] literal(String address) {
        String host = address.startsWith("[") && address.endsWith("]")
                ? address.substring(1, address.length() - 1) : address;
        if (host.indexOf(':') < 0) {
            return ipv4(host);
        }
        try {
            return normalize(InetAddress.getByName("[" + host + "]"));
        } catch (Exception e) {
            return null;
        }
    }

    private static byte @Nullable [] ipv4(String host) {
        String[] parts = host.split("\\.", -1);
        if (parts.length != 4) {
            return null;
        }
        byte[] bytes = new byte[4];
        for (int i = 0; i < 4; i++) {
            String part = parts[i];
            if (part.isEmpty() || part.length() > 3 || !part.chars().allMatch(c -> c >= '0' && c <= '9')) {
                return null;
            }
            int value = Integer.parseInt(part);
            if (value > 255) {
                return null;
            }
            bytes[i] = (byte) value;
        }
        return bytes;
    }

    static byte[] normalize(InetAddress address) {
        byte[] bytes = address.getAddress();
        if (address instanceof Inet6Address && isIpv4Mapped(bytes)) {
            byte[] v4 = new byte[4];
            System.arraycopy(bytes, 12, v4, 0, 4);
            return v4;
        }
        return bytes;
    }

    private static boolean isIpv4Mapped(byte[] bytes) {
        for (int i = 0; i < 10; i++) {
            if (bytes[i] != 0) {
                return false;
            }
        }
        return bytes[10] == (byte) 0xFF && bytes[11] == (byte) 0xFF;
    }

    boolean contains(byte[] address) {
        if (address.length != network.length) {
            return false;
        }
        int full = prefix / 8;
        for (int i = 0; i < full; i++) {
            if (address[i] != network[i]) {
                return false;
            }
        }
        int rest = prefix % 8;
        if (rest == 0) {
            return true;
        }
        int mask = (0xFF << (8 - rest)) & 0xFF;
        return (address[full] & mask) == (network[full] & mask);
    }

    static boolean anyContains(List<Cidr> blocks, byte @Nullable [] address) {
        if (address == null) {
            return false;
        }
        for (Cidr block : blocks) {
            if (block.contains(address)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The canonical text of an address, as nginx's {@code $remote_addr} writes it: IPv4 dotted, IPv6 bare (no
     * brackets, no zone) in the RFC 5952 form ({@code ::1}, {@code 2001:db8::1}). Backends parse {@code X-Real-IP}
     * and {@code X-Forwarded-For} as addresses: a bracketed one is no address to most parsers, and
     * {@link InetAddress#getHostAddress()}'s long form ({@code 0:0:0:0:0:0:0:1}) would read as another client to a
     * backend that compares the text. {@code address} is 4 or 16 bytes (see {@link #normalize}).
     */
    static String text(byte[] address) {
        if (address.length == 4) {
            return (address[0] & 0xFF) + "." + (address[1] & 0xFF) + "." + (address[2] & 0xFF) + "."
                    + (address[3] & 0xFF);
        }
        if (address.length != 16) {
            return "unknown";
        }
        int[] groups = new int[8];
        for (int i = 0; i < 8; i++) {
            groups[i] = (address[2 * i] & 0xFF) << 8 | (address[2 * i + 1] & 0xFF);
        }
        // The longest run of two or more zero groups becomes "::", the first of equally long ones (RFC 5952 4.2).
        int bestStart = -1;
        int bestLength = 1;
        int i = 0;
        while (i < 8) {
            int end = i;
            while (end < 8 && groups[end] == 0) {
                end++;
            }
            if (end - i > bestLength) {
                bestStart = i;
                bestLength = end - i;
            }
            i = end == i ? i + 1 : end;
        }
        StringBuilder text = new StringBuilder(39);
        for (int group = 0; group < 8; group++) {
            if (group == bestStart) {
                text.append("::");
                group += bestLength - 1;
                continue;
            }
            if (text.length() > 0 && text.charAt(text.length() - 1) != ':') {
                text.append(':');
            }
            text.append(Integer.toHexString(groups[group]));
        }
        return text.toString();
    }

    @Override
    public String toString() {
        return text;
    }
}
