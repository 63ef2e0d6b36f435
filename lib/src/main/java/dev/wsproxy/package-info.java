/**
 * wsproxy: a WebSocket reverse proxy you embed in a JVM application.
 *
 * <p>Start with {@link dev.wsproxy.ProxyBuilder}: it builds a {@link dev.wsproxy.WebSocketProxy} that runs standalone
 * ({@link dev.wsproxy.WebSocketProxy#start()}) or mounts in your own Jetty {@code Server}
 * ({@link dev.wsproxy.WebSocketProxy#handler()}). Routing, timeouts and Origin checks are strategy interfaces with
 * built-ins: {@link dev.wsproxy.BackendSelector}, {@link dev.wsproxy.TimeoutPolicy},
 * {@link dev.wsproxy.OriginValidator}; {@link dev.wsproxy.ProxyListener} observes sessions.
 *
 * <p>Every type here is null-hostile unless a parameter or return value is marked {@code @Nullable}.
 */
@NullMarked
package dev.wsproxy;

import org.jspecify.annotations.NullMarked;
