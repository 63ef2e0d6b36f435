package dev.wsproxy.internal;

import java.util.List;
import java.util.function.Consumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.HandshakeRequest;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.ProxySession;
import dev.wsproxy.SessionClose;

/**
 * Calls several listeners in order; an exception from one is logged and does not stop the others. It marks the thread
 * while they run ({@link UserCode}): {@code WebSocketProxy.stop} waits for every listener call, and for the selector
 * thread that runs one, so a stop called from a listener would wait for itself.
 */
final class Listeners implements ProxyListener {

    private static final Logger LOG = LoggerFactory.getLogger(Listeners.class);

    private final List<ProxyListener> listeners;

    private Listeners(List<ProxyListener> listeners) {
        this.listeners = listeners;
    }

    static ProxyListener of(List<ProxyListener> listeners) {
        return listeners.isEmpty() ? ProxyListener.NOOP : new Listeners(List.copyOf(listeners));
    }

    private void each(String event, Consumer<ProxyListener> call) {
        // Per session's open and close (and per refusal, per backend state change), never per frame.
        Object outer = UserCode.enter(this);
        try {
            for (ProxyListener listener : listeners) {
                try {
                    call.accept(listener);
                } catch (Throwable e) {
                    // Whatever it throws (an AssertionError, a checked exception from Kotlin code): the session goes
                    // on.
                    LOG.warn("Listener {} failed in {}", listener, event, e);
                }
            }
        } finally {
            UserCode.exit(outer);
        }
    }

    @Override
    public void onSessionOpened(ProxySession session) {
        each("onSessionOpened", listener -> listener.onSessionOpened(session));
    }

    @Override
    public void onSessionClosed(ProxySession session, SessionClose close) {
        each("onSessionClosed", listener -> listener.onSessionClosed(session, close));
    }

    @Override
    public void onBackendStateChanged(String route, BackendStatus backend, BackendStatus.State previous) {
        each("onBackendStateChanged", listener -> listener.onBackendStateChanged(route, backend, previous));
    }

    @Override
    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
        each("onBackendConnectFailed", listener -> listener.onBackendConnectFailed(request, backend, cause));
    }

    @Override
    public void onHandshakeRejected(HandshakeRequest request, int status, String reason) {
        each("onHandshakeRejected", listener -> listener.onHandshakeRejected(request, status, reason));
    }
}
