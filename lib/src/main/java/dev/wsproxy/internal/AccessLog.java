package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Locale;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.ProxySession;
import dev.wsproxy.SessionClose;

/**
 * One line per closed session on the logger {@code dev.wsproxy.access}, at INFO. Never logs payloads, headers,
 * cookies or query strings. The format is fixed, whatever the default locale (in a Turkish one, {@code "CLIENT"}
 * lower-cases to {@code "clıent"}).
 */
final class AccessLog {

    static final Logger LOG = LoggerFactory.getLogger("dev.wsproxy.access");

    private AccessLog() {
    }

    static void log(ProxySession session, SessionClose close) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        LOG.info("sid={} client={} route={} backend={} duration_ms={} c2b_bytes={} c2b_msgs={} b2c_bytes={} "
                        + "b2c_msgs={} client_close={} backend_close={} first={}",
                session.id(), client(session.clientAddress()), session.route(), session.backend().uri(),
                close.duration().toMillis(), session.clientToBackendBytes(), session.clientToBackendMessages(),
                session.backendToClientBytes(), session.backendToClientMessages(), close.clientCode(),
                close.backendCode(), close.initiator().name().toLowerCase(Locale.ROOT));
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
