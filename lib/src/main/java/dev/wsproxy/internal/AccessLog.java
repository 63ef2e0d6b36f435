package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Locale;

import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.SessionClose;

/**
 * One line per request the proxy handled on a route, on the logger {@code dev.wsproxy.access}, at INFO: a session at
 * its end, a refused or failed upgrade when it is refused (the client left, {@code 499}, included), a plain HTTP
 * request when its response is complete, or refused; and, standalone, one per request its server answered without a
 * route ({@link #unrouted}, from {@link PlainErrorHandler}): Jetty's own refusals and its {@code 404}. Lines share
 * their fields' names and order ({@code sid}, {@code client}, {@code route}, {@code backend}, {@code duration_ms}, then
 * each kind's own, then {@code status} and {@code reason}), {@code -} for a field that has no value. Never logs
 * payloads, headers, cookies or query strings: every field is a number, the proxy's configuration, a client address
 * made from parsed bytes, a token of the proxy's own ({@code reason}) or a method, which Jetty admits only as an HTTP
 * token, cut to 20 characters. The format is fixed, whatever the default locale (in a Turkish one, {@code "CLIENT"}
 * lower-cases to {@code "clıent"}).
 *
 * <p>A session's line is written on the selector thread that ends it, a refusal's on the thread that refuses it: an
 * appender that blocks (a disk, a network) holds them, so production set-ups should write this logger through an
 * asynchronous appender.
 */
final class AccessLog {

    static final Logger LOG = LoggerFactory.getLogger("dev.wsproxy.access");

    /** The value of a field that has none. */
    static final String NONE = "-";

    private AccessLog() {
    }

    /**
     * A session's line, once both legs have ended: when the proxy started the end, the code it sent the client
     * ({@code proxy_close}, {@code -} if it sent none) and why ({@code reason}: {@code idle_timeout}, ...).
     */
    static void session(Relay session, SessionClose close) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        int proxyClose = session.proxyClose();
        String reason = session.proxyCloseReason();
        LOG.info("sid={} client={} route={} backend={} duration_ms={} c2b_bytes={} c2b_msgs={} b2c_bytes={} "
                        + "b2c_msgs={} client_close={} backend_close={} first={} status={} proxy_close={} reason={}",
                session.id(), client(session.clientAddress()), session.route(), session.backend().uri(),
                close.duration().toMillis(), session.clientToBackendBytes(), session.clientToBackendMessages(),
                session.backendToClientBytes(), session.backendToClientMessages(), close.clientCode(),
                close.backendCode(), close.initiator().name().toLowerCase(Locale.ROOT), session.upgradeStatus(),
                proxyClose == Relay.NO_PROXY_CLOSE ? NONE : Integer.toString(proxyClose),
                reason == null ? NONE : reason);
    }

    /**
     * The line of a request that got {@code status} from the proxy, or {@code 499} when its client left first, with no
     * session: {@code reason} is one of the proxy's tokens ({@code origin_refused}, {@code backend_unreachable}, ...).
     * The backend is the last one tried, if any.
     */
    static void refused(HandshakeRequestView view, int status, String reason) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        Backend backend = view.attempted();
        request(view.clientAddress(), view.route(), backend == null ? NONE : backend.uri(), view.elapsedMillis(),
                view.method(), status, reason);
    }

    /**
     * The line of a plain HTTP request forwarded to {@code backend}, once its response is complete (or failed):
     * {@code c2bBytes} of body read from the client, {@code b2cBytes} written to it, {@code status} the one the client
     * got ({@code 499} when it left before its response began), {@code reason} a token or {@link #NONE}.
     */
    static void forwarded(HandshakeRequestView view, Backend backend, long c2bBytes, long b2cBytes, int status,
            @Nullable String reason) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        LOG.info("sid=- client={} route={} backend={} duration_ms={} c2b_bytes={} b2c_bytes={} method={} status={} "
                        + "reason={}", client(view.clientAddress()), view.route(), backend.uri(), view.elapsedMillis(),
                c2bBytes, b2cBytes, method(view.method()), status, reason == null ? NONE : reason);
    }

    /**
     * The line of a request the proxy's route handling never took, answered by the standalone server instead: one
     * Jetty refused before any handler ran ({@code bad_host}, {@code headers_too_large}, ...), or one that no route
     * nor the next handler took ({@code 404}, {@code no_route}). There is no route and no backend; {@code method} is
     * {@code null} for a request whose request line Jetty could not read.
     */
    static void unrouted(InetSocketAddress client, long elapsedMillis, @Nullable String method, int status,
            String reason) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        request(client, NONE, NONE, elapsedMillis, method, status, reason);
    }

    /** The line of a request answered without a session or a backend's response: a refused or an unrouted one. */
    private static void request(InetSocketAddress client, String route, Object backend, long elapsedMillis,
            @Nullable String method, int status, String reason) {
        LOG.info("sid=- client={} route={} backend={} duration_ms={} method={} status={} reason={}", client(client),
                route, backend, elapsedMillis, method == null ? NONE : method(method), status, reason);
    }

    /**
     * A method for a line, cut to {@value HandshakeRequestView#MAX_LOGGED_METHOD} characters: an HTTP token over
     * HTTP/1, but any field value over HTTP/2 (refused with {@code 400}), whose spaces are escaped so that it cannot
     * forge the fields after it ({@code GET status=200}).
     */
    static String method(String method) {
        return LogText.printable(HttpTokens.isToken(method) ? method : method.replace(" ", "\\u0020"),
                HandshakeRequestView.MAX_LOGGED_METHOD);
    }

    /**
     * The client as {@code X-Real-IP} and {@code X-Forwarded-For} name it ({@link Cidr#text}): an IPv6 client is
     * {@code 2001:db8::7}, not {@code InetSocketAddress}'s long form, so that one client reads the same in the log and
     * at the backend.
     */
    static String client(InetSocketAddress address) {
        InetAddress ip = address.getAddress();
        return ip == null ? address.getHostString() : Cidr.text(Cidr.normalize(ip));
    }
}
