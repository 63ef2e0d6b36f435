package dev.wsproxy.internal;

import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.HandshakeRequest;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.ProxySession;
import dev.wsproxy.SessionClose;

/** Calls several listeners in order; an exception from one is logged and does not stop the others. */
final class Listeners implements ProxyListener {

    private static final Logger LOG = LoggerFactory.getLogger(Listeners.class);

    private final List<ProxyListener> listeners;

    private Listeners(List<ProxyListener> listeners) {
        this.listeners = listeners;
    }

    static ProxyListener of(List<ProxyListener> listeners) {
        return listeners.isEmpty() ? ProxyListener.NOOP : new Listeners(List.copyOf(listeners));
    }

    @Override
    public void onSessionOpened(ProxySession session) {
        for (ProxyListener listener : listeners) {
            try {
                listener.onSessionOpened(session);
            } catch (RuntimeException e) {
                LOG.warn("[{}] Listener {} failed in onSessionOpened", session.id(), listener, e);
            }
        }
    }

    @Override
    public void onSessionClosed(ProxySession session, SessionClose close) {
        for (ProxyListener listener : listeners) {
            try {
                listener.onSessionClosed(session, close);
            } catch (RuntimeException e) {
                LOG.warn("[{}] Listener {} failed in onSessionClosed", session.id(), listener, e);
            }
        }
    }

    @Override
    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
        for (ProxyListener listener : listeners) {
            try {
                listener.onBackendConnectFailed(request, backend, cause);
            } catch (RuntimeException e) {
                LOG.warn("Listener {} failed in onBackendConnectFailed", listener, e);
            }
        }
    }

    @Override
    public void onHandshakeRejected(HandshakeRequest request, int status, String reason) {
        for (ProxyListener listener : listeners) {
            try {
                listener.onHandshakeRejected(request, status, reason);
            } catch (RuntimeException e) {
                LOG.warn("Listener {} failed in onHandshakeRejected", listener, e);
            }
        }
    }
}
