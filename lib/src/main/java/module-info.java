/**
 * wsproxy: an embeddable WebSocket reverse proxy built on Jetty 12.1.
 *
 * <p>Only {@code dev.wsproxy} is exported; {@code dev.wsproxy.internal} may change at any time.
 */
module dev.wsproxy {
    requires transitive org.eclipse.jetty.server;
    requires org.eclipse.jetty.client;
    requires org.eclipse.jetty.proxy;
    requires org.eclipse.jetty.websocket.core.common;
    requires org.eclipse.jetty.websocket.core.client;
    requires org.eclipse.jetty.websocket.core.server;
    requires org.slf4j;
    requires static transitive org.jspecify;

    exports dev.wsproxy;
}
