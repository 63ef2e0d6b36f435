package dev.wsproxy.internal;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.HandshakeRequest;
import dev.wsproxy.OriginValidator;

/** The built-in {@link OriginValidator}s, and the normalisation of origins they share. */
public final class Origins {

    public static final OriginValidator ANY = new OriginValidator() {
        @Override
        public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
            return true;
        }

        @Override
        public String toString() {
            return "allowAny";
        }
    };

    public static final OriginValidator SAME = new OriginValidator() {
        @Override
        public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
            if (origin == null) {
                return true;
            }
            Origin parsed = parse(origin);
            if (parsed == null) {
                return false;
            }
            // The authority, not getHost(): java.net.URI has no host for chat_app:8080 (see parse). Parsed as an
            // origin, so the Host (or a trusted X-Forwarded-Host) [0:0:0:0:0:0:0:1]:8080 is the origin's [::1]:8080.
            String authority = request.uri().getRawAuthority();
            return authority != null
                    && parsed.equals(parse((request.secure() ? "https" : "http") + "://" + authority));
        }

        @Override
        public String toString() {
            return "sameOrigin";
        }
    };

    private Origins() {
    }

    public static OriginValidator allowList(List<String> origins) {
        if (origins.isEmpty()) {
            throw new IllegalArgumentException("origins: [] (expected: at least one origin)");
        }
        Set<Origin> allowed = new LinkedHashSet<>();
        for (String origin : origins) {
            Origin parsed = origin == null ? null : parse(origin);
            if (parsed == null) {
                throw new IllegalArgumentException(
                        "origin: " + origin + " (expected: scheme://host[:port], like https://app.example.com)");
            }
            allowed.add(parsed);
        }
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                if (origin == null) {
                    return true;
                }
                Origin parsed = parse(origin);
                return parsed != null && allowed.contains(parsed);
            }

            @Override
            public String toString() {
                return "allowList" + allowed;
            }
        };
    }

    public static OriginValidator allowPattern(List<String> patterns) {
        if (patterns.isEmpty()) {
            throw new IllegalArgumentException("patterns: [] (expected: at least one pattern)");
        }
        Set<Origin> exact = new HashSet<>();
        List<Origin> wildcards = new ArrayList<>(); // each with its host the domain after "*", like ".example.com"
        for (String pattern : patterns) {
            String expectation = " (expected: scheme://host[:port] or scheme://*.domain[:port])";
            if (pattern == null) {
                throw new IllegalArgumentException("pattern: null" + expectation);
            }
            int star = pattern.indexOf("://*.");
            if (star < 0) {
                Origin parsed = parse(pattern);
                if (parsed == null) {
                    throw new IllegalArgumentException("pattern: " + pattern + expectation);
                }
                exact.add(parsed);
                continue;
            }
            // Parse the pattern as if "*" were a label, then keep the domain after it.
            Origin parsed = parse(pattern.replace("://*.", "://wildcard."));
            if (parsed == null || pattern.indexOf('*', star + 4) >= 0) {
                throw new IllegalArgumentException("pattern: " + pattern + expectation);
            }
            wildcards.add(new Origin(parsed.scheme(), parsed.host().substring("wildcard".length()), parsed.port()));
        }
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                if (origin == null) {
                    return true;
                }
                Origin parsed = parse(origin);
                if (parsed == null) {
                    return false;
                }
                if (exact.contains(parsed)) {
                    return true;
                }
                String host = parsed.host();
                for (Origin wildcard : wildcards) {
                    if (wildcard.scheme().equals(parsed.scheme()) && wildcard.port() == parsed.port()
                            && host.endsWith(wildcard.host()) && host.length() > wildcard.host().length()) {
                        return true;
                    }
                }
                return false;
            }

            @Override
            public String toString() {
                return "allowPattern" + patterns;
            }
        };
    }

    /**
     * An origin as the built-ins compare it, each part in one spelling: the scheme and host in lower case ({@code ws}
     * read as {@code http}, {@code wss} as {@code https}), an IPv6 host in its RFC 5952 form, and the port filled in
     * for the schemes that have a default one; {@code port} is {@code -1} for an origin of another scheme written
     * without one. Its text is {@code scheme://host[:port]}.
     */
    record Origin(String scheme, String host, int port) {
        @Override
        public String toString() {
            return scheme + "://" + host + (port < 0 ? "" : ":" + port);
        }
    }

    /**
     * Parses an origin as {@link Origin} spells it; {@code null} for anything that is not a plain origin (including
     * the literal {@code null}).
     *
     * <p>Parsed here rather than with {@code java.net.URI}, which takes a host with {@code _} in a label (a
     * docker-compose service name, {@code http://chat_app:8080}, which browsers send as {@code Origin} and
     * {@code Host}) for a registry-based authority and has no host for it: {@code sameOrigin} refused every origin of
     * such a site, its own included, and {@code allowList} refused to be built with one. The syntax is RFC 6454's
     * serialisation, {@code scheme "://" host [":" port]}, with a path of {@code /} tolerated: a scheme as in RFC 3986,
     * a port from 1 to 65535, and a host {@code java.net.URI} takes as one, with {@code _} taken as a letter: labels
     * of letters, digits, {@code _} and inner {@code -}, the last of several not starting with a digit unless the
     * host is an IPv4 address; or an IPv6 address in brackets. Non-ASCII characters, user info, a query, a fragment
     * and any other path are refused, before case is folded (so no character folds into an ASCII one).
     *
     * <p>Browsers write an origin's host in one form (the URL Standard's host serializer), and the built-ins compare
     * with what people write in lists and what other clients send as {@code Host}, so a host is taken in that form
     * or in one that means the same to every reader: an IPv6 address in any of its spellings, taken as its RFC 5952
     * text ({@code [0:0:0:0:0:0:0:1]} and {@code [::1]} are one host, {@code [::FFFF:127.0.0.1]} is
     * {@code [::ffff:7f00:1]}, as browsers write it), but without a zone ({@code [fe80::1%25eth0]}: a zone names an
     * interface of one machine, and URLs have none); an IPv4 address only as four decimal numbers without leading
     * zeros, and no other host whose last label is a number: browsers read {@code 010.0.0.1} as the octal
     * {@code 8.0.0.1} and {@code 2130706433} or {@code 127.1} as {@code 127.0.0.1}, and send the dotted form they
     * read: a list entry or a {@code Host} written otherwise is ambiguous, never what a browser sends, and refused.
     *
     * <p>{@code http}, {@code https}, {@code ws}, {@code wss} and {@code ftp} have a default port, filled in; a
     * {@code file} origin is opaque (browsers send {@code null}) and refused. Other schemes, those of browser
     * extensions ({@code chrome-extension://id}, {@code moz-extension://id}) and of apps that serve their pages from
     * a scheme of their own ({@code capacitor://localhost}, Electron's {@code app://host}, {@code tauri://localhost}),
     * have none: {@code app://host} and {@code app://host:99} are two origins.
     */
    static @Nullable Origin parse(String origin) {
        String text = origin.trim();
        int schemeEnd = text.indexOf("://");
        if (schemeEnd <= 0 || !isScheme(text, schemeEnd)) {
            return null;
        }
        int end = text.endsWith("/") ? text.length() - 1 : text.length(); // the path "/" only
        int hostStart = schemeEnd + 3;
        int hostEnd;
        String host;
        if (hostStart < end && text.charAt(hostStart) == '[') {
            hostEnd = text.indexOf(']', hostStart) + 1;
            String address = hostEnd == 0 ? null : Cidr.ipv6Text(text.substring(hostStart + 1, hostEnd - 1));
            if (address == null) {
                return null;
            }
            host = "[" + address + "]";
        } else {
            int colon = text.indexOf(':', hostStart);
            hostEnd = colon < 0 || colon > end ? end : colon;
            if (!isHostName(text, hostStart, hostEnd)) {
                return null;
            }
            host = text.substring(hostStart, hostEnd).toLowerCase(Locale.ROOT);
        }
        String scheme = text.substring(0, schemeEnd).toLowerCase(Locale.ROOT);
        int defaultPort;
        switch (scheme) {
            case "http", "ws" -> {
                scheme = "http";
                defaultPort = 80;
            }
            case "https", "wss" -> {
                scheme = "https";
                defaultPort = 443;
            }
            case "ftp" -> defaultPort = 21;
            case "file" -> {
                return null;
            }
            default -> defaultPort = -1;
        }
        int port;
        if (hostEnd == end || hostEnd == end - 1 && text.charAt(hostEnd) == ':') { // no port, or an empty one
            port = defaultPort;
        } else {
            port = text.charAt(hostEnd) == ':' ? port(text, hostEnd + 1, end) : -1;
            if (port < 1) {
                return null;
            }
        }
        return new Origin(scheme, host, port);
    }

    /** RFC 3986: {@code ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )}. */
    private static boolean isScheme(String text, int end) {
        if (!isLetter(text.charAt(0))) {
            return false;
        }
        for (int i = 1; i < end; i++) {
            char c = text.charAt(i);
            if (!isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.') {
                return false;
            }
        }
        return true;
    }

    /**
     * A host name as {@code java.net.URI} takes one (RFC 2396's {@code hostname} or {@code IPv4address}), with
     * {@code _} taken as a letter: dot-separated labels of letters, digits, {@code _} and {@code -} (not first or
     * last), an optional trailing dot, and the last of several labels starting with a letter or {@code _}, unless the
     * host is an IPv4 address ({@link #isIpv4Address}). A single label is not a number either, decimal or {@code 0x}
     * hex: browsers read {@code http://2130706433} and {@code http://0x7f000001} as {@code http://127.0.0.1}.
     */
    private static boolean isHostName(String text, int start, int end) {
        if (start >= end) {
            return false;
        }
        int lastLabel = start;
        int lastLabelEnd = end;
        int i = start;
        while (i < end) {
            int label = i;
            while (i < end && (isLabelCharacter(text.charAt(i)) || text.charAt(i) == '-')) {
                i++;
            }
            if (i == label || text.charAt(label) == '-' || text.charAt(i - 1) == '-') {
                return false;
            }
            lastLabel = label;
            lastLabelEnd = i;
            if (i < end) {
                if (text.charAt(i) != '.') {
                    return false;
                }
                i++;
            }
        }
        if (lastLabel == start) {
            return !isNumber(text, start, lastLabelEnd);
        }
        return !isDigit(text.charAt(lastLabel)) || isIpv4Address(text, start, end);
    }

    /**
     * Four decimal numbers from 0 to 255, separated by dots, without leading zeros: the form browsers send. Taken
     * before ({@code java.net.URI} does), {@code 127.000.000.001} was another host than {@code 127.0.0.1}, and
     * browsers read {@code 010.0.0.1} as {@code 8.0.0.1} (octal): no one reading of it is right.
     */
    private static boolean isIpv4Address(String text, int start, int end) {
        int parts = 0;
        int i = start;
        while (parts < 4) {
            int value = 0;
            int digits = i;
            while (i < end && isDigit(text.charAt(i)) && value <= 255) {
                value = value * 10 + text.charAt(i++) - '0';
            }
            if (i == digits || value > 255 || i - digits > 1 && text.charAt(digits) == '0') {
                return false;
            }
            parts++;
            if (parts < 4) {
                if (i >= end || text.charAt(i) != '.') {
                    return false;
                }
                i++;
            }
        }
        return i == end;
    }

    /** The port in {@code text[start, end)}: 1 to 65535 in decimal digits; {@code -1} for anything else. */
    private static int port(String text, int start, int end) {
        if (start >= end) {
            return -1;
        }
        int port = 0;
        for (int i = start; i < end; i++) {
            char c = text.charAt(i);
            if (!isDigit(c)) {
                return -1;
            }
            port = port * 10 + c - '0';
            if (port > 65_535) {
                return -1;
            }
        }
        return port;
    }

    /** A label browsers read as a number: decimal digits, or {@code 0x} and hex digits (the URL Standard's IPv4). */
    private static boolean isNumber(String text, int start, int end) {
        int digits = start;
        boolean hex = end - start >= 2 && text.charAt(start) == '0'
                && (text.charAt(start + 1) == 'x' || text.charAt(start + 1) == 'X');
        if (hex) {
            digits += 2;
        }
        for (int i = digits; i < end; i++) {
            if (hex ? !isHexDigit(text.charAt(i)) : !isDigit(text.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    private static boolean isLabelCharacter(char c) {
        return isLetter(c) || isDigit(c) || c == '_';
    }

    private static boolean isLetter(char c) {
        return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z';
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private static boolean isHexDigit(char c) {
        return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F';
    }
}
