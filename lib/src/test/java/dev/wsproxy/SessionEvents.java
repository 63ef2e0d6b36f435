package dev.wsproxy;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

/** A {@link ProxyListener} that queues the sessions opened and the closes reported, for tests to wait on. */
final class SessionEvents implements ProxyListener {

    final BlockingQueue<ProxySession> opened = new LinkedBlockingQueue<>();
    final BlockingQueue<SessionClose> closes = new LinkedBlockingQueue<>();

    @Override
    public void onSessionOpened(ProxySession session) {
        opened.add(session);
    }

    @Override
    public void onSessionClosed(ProxySession session, SessionClose close) {
        closes.add(close);
    }
}
