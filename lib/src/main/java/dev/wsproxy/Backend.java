package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

import dev.wsproxy.internal.Cidr;

/**
 * A backend WebSocket server that the proxy forwards sessions to: a {@code ws://} or {@code wss://} URI, a weight,
 * and whether it is a backup.
 *
 * <p>{@code http://} and {@code https://} are accepted and mean {@code ws://} and {@code wss://}. The path of the URI
 * decides how request paths are mapped, exactly like nginx's {@code proxy_pass}:
 * <ul>
 *   <li>no path ({@code ws://10.0.0.1:8080}): the client's path and query are sent as the client sent them;</li>
 *   <li>a path ({@code ws://10.0.0.1:8080/chat/}): the matched route prefix is replaced by that path, and the rest of
 *       the client's path and its query are appended.</li>
 * </ul>
 * Either way, characters RFC 3986 does not allow in a query, which browsers send unencoded ({@code { } | ^}), are
 * percent-encoded: {@code ?f={a}} reaches the backend as {@code ?f=%7Ba%7D}.
 *
 * <p>A backup backend ({@link #asBackup()}, nginx's {@code backup}) gets new sessions only while no primary backend of
 * its route can take one: none is up and not draining, below its cap of handshakes in flight and not already tried by
 * the handshake (failover).
 *
 * <p>Instances are immutable values: two backends are equal when their URI ({@link #uri()}, normalised, so
 * {@code ws://Chat.Example:80} and {@code ws://chat.example} are one), weight and backup flag are equal.
 *
 * <pre>{@code
 * Backend a = Backend.of("ws://10.0.0.1:8080");
 * Backend b = Backend.of("wss://chat.internal/socket/").withWeight(3);
 * }</pre>
 */
public final class Backend {

    /** The weight of a backend unless {@link #withWeight(int)} says otherwise: {@value}. */
    public static final int DEFAULT_WEIGHT = 1;

    private final URI uri;
    private final int weight;
    private final boolean backup;

    private Backend(URI uri, int weight, boolean backup) {
        this.uri = uri;
        this.weight = weight;
        this.backup = backup;
    }

    /**
     * Returns a backend for the given URI string.
     *
     * @param uri a {@code ws}, {@code wss}, {@code http} or {@code https} URI with a host
     * @return the backend, with weight {@value #DEFAULT_WEIGHT}
     * @throws IllegalArgumentException if the URI is malformed, has another scheme, no host, a port outside 1 to 65535,
     *         user info, a query or a fragment
     */
    public static Backend of(String uri) {
        requireNonNull(uri, "uri");
        try {
            return of(new URI(uri));
        } catch (URISyntaxException e) {
            // Not the cause, nor its index: its message repeats the URI, user info included, which is not shown.
            throw new IllegalArgumentException("uri: " + withoutUserInfo(uri) + " (expected: a ws:// or wss:// URI): "
                    + e.getReason());
        }
    }

    /**
     * Returns a backend for the given URI.
     *
     * @param uri a {@code ws}, {@code wss}, {@code http} or {@code https} URI with a host
     * @return the backend, with weight {@value #DEFAULT_WEIGHT}
     * @throws IllegalArgumentException if the URI has another scheme, no host, a port outside 1 to 65535, user info, a
     *         query or a fragment
     */
    public static Backend of(URI uri) {
        requireNonNull(uri, "uri");
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        String wsScheme;
        switch (scheme) {
            case "ws":
            case "http":
                wsScheme = "ws";
                break;
            case "wss":
            case "https":
                wsScheme = "wss";
                break;
            default:
                throw refused(uri, "scheme ws, wss, http or https");
        }
        if (uri.getHost() == null || uri.getHost().isEmpty()) {
            throw refused(uri, "a host");
        }
        if (uri.getRawUserInfo() != null) {
            throw refused(uri, "no user info");
        }
        if (uri.getPort() == 0 || uri.getPort() > 65_535) {
            throw refused(uri, "a port from 1 to 65535");
        }
        if (uri.getRawFragment() != null) {
            throw refused(uri, "no fragment");
        }
        if (uri.getRawQuery() != null) {
            throw refused(uri, "no query; the client's query is forwarded");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        // One spelling for one backend, so that equality, the duplicate check of a route and sticky hashing agree.
        int port = uri.getPort() == ("ws".equals(wsScheme) ? 80 : 443) ? -1 : uri.getPort();
        URI normalized = URI.create(wsScheme + "://" + Cidr.canonicalHost(uri.getHost()) + (port < 0 ? "" : ":" + port)
                + path);
        return new Backend(normalized, DEFAULT_WEIGHT, false);
    }

    private static IllegalArgumentException refused(URI uri, String expected) {
        return new IllegalArgumentException("uri: " + withoutUserInfo(uri.toString()) + " (expected: " + expected + ")");
    }

    /**
     * {@code uri} with what stands between {@code //} and the last {@code @} of its authority replaced by {@code ***}:
     * user info is often a password, and these messages end up in logs. Done on the text, as a URI that fails to
     * parse, or parses without a host ({@code ws://u:p@ss@h}), has no user info to ask for.
     */
    private static String withoutUserInfo(String uri) {
        int start = uri.indexOf("//");
        if (start < 0) {
            return uri;
        }
        start += 2;
        int end = start;
        while (end < uri.length() && "/?#".indexOf(uri.charAt(end)) < 0) {
            end++;
        }
        int at = uri.lastIndexOf('@', end - 1);
        return at < start ? uri : uri.substring(0, start) + "***" + uri.substring(at);
    }

    /**
     * Returns a copy of this backend with the given weight, used by weighted selectors.
     *
     * @param weight a weight from 1 to 1000
     * @return a backend with the same URI and the given weight
     * @throws IllegalArgumentException if the weight is out of range
     */
    public Backend withWeight(int weight) {
        if (weight < 1 || weight > 1000) {
            throw new IllegalArgumentException("weight: " + weight + " (expected: 1 to 1000)");
        }
        return new Backend(uri, weight, backup);
    }

    /**
     * Returns a copy of this backend marked as a backup: it gets new sessions only while no primary backend of its
     * route can take one (every primary is down, draining, at its cap of handshakes in flight, or already failed for
     * the handshake at hand).
     *
     * @return a backup backend with the same URI and weight
     */
    public Backend asBackup() {
        return new Backend(uri, weight, true);
    }

    /**
     * Tells whether this is a backup backend.
     *
     * @return {@code true} for a backend made with {@link #asBackup()}
     */
    public boolean isBackup() {
        return backup;
    }

    /**
     * Returns the URI, normalised: the scheme {@code ws} or {@code wss}, the host in lower case (an IPv6 literal in
     * its RFC 5952 form), no default port ({@code ws://chat.example:80} is {@code ws://chat.example}), the path as
     * given.
     *
     * @return the backend URI
     */
    public URI uri() {
        return uri;
    }

    /**
     * Returns the weight.
     *
     * @return the weight, {@value #DEFAULT_WEIGHT} unless set
     */
    public int weight() {
        return weight;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Backend)) {
            return false;
        }
        Backend that = (Backend) o;
        return weight == that.weight && backup == that.backup && uri.equals(that.uri);
    }

    @Override
    public int hashCode() {
        return (uri.hashCode() * 31 + weight) * 2 + (backup ? 1 : 0);
    }

    @Override
    public String toString() {
        return uri + (weight == DEFAULT_WEIGHT ? "" : ";weight=" + weight) + (backup ? ";backup" : "");
    }
}
