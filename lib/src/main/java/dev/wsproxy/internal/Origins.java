package dev.wsproxy.internal;

import java.net.URI;
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
            URI uri = request.uri();
            String own = uri.getHost() == null ? null
                    : normalize((request.secure() ? "https" : "http") + "://" + uri.getRawAuthority());
            return normalized.equals(own);
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
     */
    static @Nullable String normalize(String origin) {
        URI uri;
        try {
            uri = new URI(origin.trim());
        } catch (Exception e) {
            return null;
        }
        String scheme = uri.getScheme();
        String host = uri.getHost();
        if (scheme == null || host == null || uri.getRawUserInfo() != null || uri.getRawQuery() != null
                || uri.getRawFragment() != null) {
            return null;
        }
        String path = uri.getRawPath();
        if (path != null && !path.isEmpty() && !path.equals("/")) {
            return null;
        }
        scheme = scheme.toLowerCase(Locale.ROOT);
        if (scheme.equals("ws")) {
            scheme = "http";
        } else if (scheme.equals("wss")) {
            scheme = "https";
        }
        int port = uri.getPort();
        if (port == -1) {
            if (scheme.equals("http")) {
                port = 80;
            } else if (scheme.equals("https")) {
                port = 443;
            } else {
                return null;
            }
        }
        return scheme + "://" + host.toLowerCase(Locale.ROOT) + ":" + port;
    }
}
