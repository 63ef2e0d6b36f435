package dev.wsproxy.internal;

import java.util.HashSet;
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
            String normalized = normalize(origin);
            if (normalized == null) {
                return false;
            }
            // The authority, not getHost(): java.net.URI has no host for chat_app:8080 (see normalize).
            String authority = request.uri().getRawAuthority();
            return authority != null
                    && normalized.equals(normalize((request.secure() ? "https" : "http") + "://" + authority));
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
        Set<String> allowed = new HashSet<>();
        for (String origin : origins) {
            String normalized = origin == null ? null : normalize(origin);
            if (normalized == null) {
                throw new IllegalArgumentException(
                        "origin: " + origin + " (expected: scheme://host[:port], like https://app.example.com)");
            }
            allowed.add(normalized);
        }
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                if (origin == null) {
                    return true;
                }
                String normalized = normalize(origin);
                return normalized != null && allowed.contains(normalized);
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
        Set<String> exact = new HashSet<>();
        List<String[]> wildcards = new java.util.ArrayList<>(); // {scheme, ".domain", port}
        for (String pattern : patterns) {
            String expectation = " (expected: scheme://host[:port] or scheme://*.domain[:port])";
            if (pattern == null) {
                throw new IllegalArgumentException("pattern: null" + expectation);
            }
            int star = pattern.indexOf("://*.");
            if (star < 0) {
                String normalized = normalize(pattern);
                if (normalized == null) {
                    throw new IllegalArgumentException("pattern: " + pattern + expectation);
                }
                exact.add(normalized);
                continue;
            }
            // Normalise the pattern as if "*" were a label, then keep the domain after it.
            String normalized = normalize(pattern.replace("://*.", "://wildcard."));
            if (normalized == null || pattern.indexOf('*', star + 4) >= 0) {
                throw new IllegalArgumentException("pattern: " + pattern + expectation);
            }
            int hostStart = normalized.indexOf("://") + 3;
            int portStart = normalized.lastIndexOf(':');
            String scheme = normalized.substring(0, hostStart - 3);
            String domain = normalized.substring(hostStart + "wildcard".length(), portStart); // ".example.com"
            wildcards.add(new String[] {scheme, domain, normalized.substring(portStart + 1)});
        }
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                if (origin == null) {
                    return true;
                }
                String normalized = normalize(origin);
                if (normalized == null) {
                    return false;
                }
                if (exact.contains(normalized)) {
                    return true;
                }
                int hostStart = normalized.indexOf("://") + 3;
                int portStart = normalized.lastIndexOf(':');
                String scheme = normalized.substring(0, hostStart - 3);
                String host = normalized.substring(hostStart, portStart);
                String port = normalized.substring(portStart + 1);
                for (String[] wildcard : wildcards) {
                    if (wildcard[0].equals(scheme) && wildcard[2].equals(port) && host.endsWith(wildcard[1])
                            && host.length() > wildcard[1].length()) {
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
     * Returns {@code scheme://host:port} in lower case with the default port filled in, {@code ws} read as
     * {@code http} and {@code wss} as {@code https}; {@code null} for anything that is not a plain origin
     * (including the literal {@code null}).
     *
     * <p>Parsed here rather than with {@code java.net.URI}, which takes a host with {@code _} in a label (a
     * docker-compose service name, {@code http://chat_app:8080}, which browsers send as {@code Origin} and
     * {@code Host}) for a registry-based authority and has no host for it: {@code sameOrigin} refused every origin of
     * such a site, its own included, and {@code allowList} refused to be built with one. The syntax is RFC 6454's
     * serialisation, {@code scheme "://" host [":" port]}, with a path of {@code /} tolerated: a scheme as in RFC 3986,
     * a port from 1 to 65535 (required for schemes other than {@code http}, {@code https}, {@code ws} and
     * {@code wss}), and a host {@code java.net.URI} takes as one, with {@code _} taken as a letter: labels of
     * letters, digits, {@code _} and inner {@code -}, the last of several not starting with a digit unless the host is
     * an IPv4 address; or an IPv6 address in brackets, written as it was sent (so {@code [::1]} and
     * {@code [0:0:0:0:0:0:0:1]} are two origins, as before). Non-ASCII characters, user info, a query, a fragment and
     * any other path are refused, before case is folded (so no character folds into an ASCII one).
     */
    static @Nullable String normalize(String origin) {
        String text = origin.trim();
        int schemeEnd = text.indexOf("://");
        if (schemeEnd <= 0 || !isScheme(text, schemeEnd)) {
            return null;
        }
        int end = text.endsWith("/") ? text.length() - 1 : text.length(); // the path "/" only
        int hostStart = schemeEnd + 3;
        int hostEnd;
        if (hostStart < end && text.charAt(hostStart) == '[') {
            hostEnd = text.indexOf(']', hostStart) + 1;
            if (hostEnd == 0 || !isIpv6Reference(text, hostStart + 1, hostEnd - 1)) {
                return null;
            }
        } else {
            int colon = text.indexOf(':', hostStart);
            hostEnd = colon < 0 || colon > end ? end : colon;
            if (!isHostName(text, hostStart, hostEnd)) {
                return null;
            }
        }
        String scheme = text.substring(0, schemeEnd).toLowerCase(Locale.ROOT);
        if (scheme.equals("ws")) {
            scheme = "http";
        } else if (scheme.equals("wss")) {
            scheme = "https";
        }
        int port;
        if (hostEnd == end || hostEnd == end - 1 && text.charAt(hostEnd) == ':') { // no port, or an empty one
            if (scheme.equals("http")) {
                port = 80;
            } else if (scheme.equals("https")) {
                port = 443;
            } else {
                return null;
            }
        } else {
            port = text.charAt(hostEnd) == ':' ? port(text, hostEnd + 1, end) : -1;
            if (port < 1) {
                return null;
            }
        }
        return scheme + "://" + text.substring(hostStart, hostEnd).toLowerCase(Locale.ROOT) + ":" + port;
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
     * host is four decimal numbers up to 255.
     */
    private static boolean isHostName(String text, int start, int end) {
        if (start >= end) {
            return false;
        }
        int lastLabel = start;
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
            if (i < end) {
                if (text.charAt(i) != '.') {
                    return false;
                }
                i++;
            }
        }
        return lastLabel == start || !isDigit(text.charAt(lastLabel)) || isIpv4Address(text, start, end);
    }

    /** Four decimal numbers from 0 to 255, separated by dots (leading zeros allowed, as by {@code java.net.URI}). */
    private static boolean isIpv4Address(String text, int start, int end) {
        int parts = 0;
        int i = start;
        while (parts < 4) {
            int value = 0;
            int digits = i;
            while (i < end && isDigit(text.charAt(i)) && value <= 255) {
                value = value * 10 + text.charAt(i++) - '0';
            }
            if (i == digits || value > 255) {
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

    /**
     * What {@code java.net.URI} takes between brackets: an IPv6 address (RFC 4291 section 2.2: eight groups of one to
     * four hex digits, the last two possibly an IPv4 address, or fewer with one {@code ::}), then optionally
     * {@code %} and a zone of letters, digits, {@code _} and {@code .}.
     */
    private static boolean isIpv6Reference(String text, int start, int end) {
        int percent = text.indexOf('%', start);
        if (percent >= 0 && percent < end) {
            if (percent + 1 == end) {
                return false;
            }
            for (int i = percent + 1; i < end; i++) {
                char c = text.charAt(i);
                if (!isLetter(c) && !isDigit(c) && c != '_' && c != '.') {
                    return false;
                }
            }
            end = percent;
        }
        int compressed = text.indexOf("::", start);
        if (compressed >= end - 1) {
            compressed = -1;
        }
        if (compressed < 0) {
            return ipv6Groups(text, start, end, true) == 8;
        }
        int before = compressed == start ? 0 : ipv6Groups(text, start, compressed, false);
        int after = compressed + 2 == end ? 0 : ipv6Groups(text, compressed + 2, end, true);
        return before >= 0 && after >= 0 && before + after < 8;
    }

    /**
     * Counts the groups of a {@code :}-separated run of one to four hex digits each, an IPv4 address counting for two
     * when {@code ipv4Last} allows one at the end; {@code -1} if the run is anything else (a {@code ::} included).
     */
    private static int ipv6Groups(String text, int start, int end, boolean ipv4Last) {
        int groups = 0;
        int i = start;
        while (true) {
            int group = i;
            while (i < end && i - group < 4 && isHexDigit(text.charAt(i))) {
                i++;
            }
            if (ipv4Last && i < end && text.charAt(i) == '.') {
                return isIpv4Address(text, group, end) ? groups + 2 : -1;
            }
            if (i == group) {
                return -1;
            }
            groups++;
            if (i == end) {
                return groups;
            }
            if (text.charAt(i) != ':') {
                return -1;
            }
            i++;
        }
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
