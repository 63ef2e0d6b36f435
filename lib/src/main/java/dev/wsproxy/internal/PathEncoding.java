package dev.wsproxy.internal;

import java.nio.charset.StandardCharsets;

/**
 * Encodes a path or a query for a backend request. Jetty's canonical path decodes what is safe to decode (UTF-8
 * letters) and keeps escapes that would change the meaning of the path ({@code %2F}, {@code %3F}, {@code %20}...), so
 * the characters outside RFC 3986 {@code pchar} and {@code /} are encoded, and existing {@code %XX} escapes are kept
 * as they are rather than encoded twice. A query is the client's as it was sent, which Jetty does not check: browsers
 * send {@code { } | ^ ` \} and non-ASCII letters unencoded there, which RFC 3986 does not allow (and
 * {@code java.net.URI} refuses), so they are encoded the same way, keeping {@code ?}, {@code [} and {@code ]} too (PHP
 * style {@code a[]=1}).
 */
final class PathEncoding {

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    private PathEncoding() {
    }

    static String encodeKeepingEscapes(String path) {
        return encode(path, false);
    }

    static String encodeQueryKeepingEscapes(String query) {
        return encode(query, true);
    }

    private static String encode(String path, boolean query) {
        StringBuilder out = null;
        for (int i = 0; i < path.length(); i++) {
            char c = path.charAt(i);
            boolean keep = isPathChar(c) || (query && (c == '?' || c == '[' || c == ']'))
                    || (c == '%' && isEscape(path, i));
            if (keep) {
                if (out != null) {
                    out.append(c);
                }
                continue;
            }
            if (out == null) {
                out = new StringBuilder(path.length() + 16).append(path, 0, i);
            }
            int end = Character.isHighSurrogate(c) && i + 1 < path.length() ? i + 2 : i + 1;
            for (byte b : path.substring(i, end).getBytes(StandardCharsets.UTF_8)) {
                out.append('%').append(HEX[(b >> 4) & 0xF]).append(HEX[b & 0xF]);
            }
            i = end - 1;
        }
        return out == null ? path : out.toString();
    }

    private static boolean isEscape(String path, int i) {
        return i + 2 < path.length() && isHex(path.charAt(i + 1)) && isHex(path.charAt(i + 2));
    }

    private static boolean isHex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
    }

    /** RFC 3986 pchar without {@code %}, plus {@code /}. */
    private static boolean isPathChar(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || "-._~!$&'()*+,;=:@/".indexOf(c) >= 0;
    }
}
