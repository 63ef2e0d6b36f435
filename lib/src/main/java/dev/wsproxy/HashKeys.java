package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.util.function.Function;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.HttpTokens;

/**
 * Ready keys for {@link BackendSelector#consistentHash(Function)}: a header, a cookie, a query parameter, the path.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", a, b, c)
 *         .backendSelector(BackendSelector.consistentHash(HashKeys.cookie("session")));
 * }</pre>
 *
 * <p>Each returns {@code null} when the request has no such value; the selector then hands the session out by
 * weighted round robin. A key is any {@code Function<SelectionContext, String>}, so you can also write your own, for
 * instance a header with a cookie as fallback:
 * <pre>{@code
 * Function<SelectionContext, String> user = context -> context.header("X-User") != null
 *         ? context.header("X-User") : context.cookie("user");
 * }</pre>
 * Keys from the client are the client's to choose: a client can pick its backend by choosing its key. Hash on values
 * your own front end sets, or that identify the client anyway.
 *
 * <p>The functions are stateless and thread-safe.
 *
 * @see BackendSelector#consistentHash(Function)
 */
public final class HashKeys {

    private HashKeys() {
    }

    /**
     * Returns the first value of a request header as the key, like nginx's {@code hash $http_x_user consistent}.
     *
     * @param name the header name, case-insensitive, like {@code X-User}: an RFC 9110 token (letters, digits and
     *         {@code !#$%&'*+-.^_`|~}), without the colon
     * @return a key function
     * @throws IllegalArgumentException if the name is not a token ({@code "X-User:"}, {@code "X User"}): no request
     *         could carry it, and every pick would fall back to round robin
     */
    public static Function<SelectionContext, @Nullable String> header(String name) {
        requireNonNull(name, "name");
        checkName("header", name);
        checkToken("header", name, "a header name, an RFC 9110 token");
        return new Key("header " + name, context -> context.header(name));
    }

    /**
     * Returns the value of a cookie as the key, like nginx's {@code hash $cookie_session consistent}.
     *
     * @param name the cookie name, case-sensitive, like {@code session}: an RFC 6265 token (letters, digits and
     *         {@code !#$%&'*+-.^_`|~}), without the {@code =}
     * @return a key function
     * @throws IllegalArgumentException if the name is not a token ({@code "session="}, {@code "my session"}): no
     *         cookie could have it, and every pick would fall back to round robin
     */
    public static Function<SelectionContext, @Nullable String> cookie(String name) {
        requireNonNull(name, "name");
        checkName("cookie", name);
        checkToken("cookie", name, "a cookie name, an RFC 6265 token");
        return new Key("cookie " + name, context -> context.cookie(name));
    }

    /**
     * Returns the decoded value of a query parameter as the key, like nginx's {@code hash $arg_room consistent}.
     *
     * @param name the parameter name, case-sensitive, like {@code room}
     * @return a key function
     */
    public static Function<SelectionContext, @Nullable String> queryParameter(String name) {
        requireNonNull(name, "name");
        checkName("queryParameter", name);
        return new Key("query " + name, context -> context.queryParameter(name));
    }

    /**
     * Returns the request path, without the query, as the key, like nginx's {@code hash $uri consistent}: every
     * session of {@code /ws/rooms/42} meets the same backend. The path is the one the client sent, escapes and all
     * ({@link java.net.URI#getRawPath()}), where nginx's {@code $uri} is decoded and normalized: {@code /ws/rooms/%34%32}
     * is another key.
     *
     * @return a key function
     */
    public static Function<SelectionContext, @Nullable String> path() {
        return new Key("path", context -> context.uri().getRawPath());
    }

    private static void checkName(String what, String name) {
        if (name.isEmpty()) {
            throw new IllegalArgumentException(what + ": '' (expected: a name)");
        }
    }

    private static void checkToken(String what, String name, String expected) {
        if (!HttpTokens.isToken(name)) {
            throw new IllegalArgumentException(what + ": '" + name + "' (expected: " + expected + " of "
                    + HttpTokens.CHARACTERS + ")");
        }
    }

    /** A key function with a readable {@code toString()}, for logs and the selector's own. */
    private static final class Key implements Function<SelectionContext, @Nullable String> {
        private final String description;
        private final Function<SelectionContext, @Nullable String> function;

        Key(String description, Function<SelectionContext, @Nullable String> function) {
            this.description = description;
            this.function = function;
        }

        @Override
        public @Nullable String apply(SelectionContext context) {
            return function.apply(context);
        }

        @Override
        public String toString() {
            return description;
        }
    }
}
