package dev.wsproxy;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.ArrayList;
import java.util.List;

/**
 * A loopback port whose listener never accepts and whose accept queue is full: a new connection to it gets no answer
 * to its SYN (Linux drops a SYN to a listener whose accept queue is full) and waits until its connect timeout, as with
 * a backend that is overloaded or black-holed. Deterministic, unlike a non-routable address: the queue is filled
 * until a connect of this test's own times out.
 */
final class UnacceptedPort implements AutoCloseable {

    private final ServerSocket listener;
    private final List<Socket> queued = new ArrayList<>();

    UnacceptedPort() throws IOException {
        listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        try {
            for (int i = 0; i < 64; i++) {
                Socket socket = new Socket();
                try {
                    socket.connect(listener.getLocalSocketAddress(), 200);
                    queued.add(socket);
                } catch (SocketTimeoutException full) {
                    socket.close();
                    return;
                }
            }
            throw new IllegalStateException("the accept queue of port " + port() + " never filled up");
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    int port() {
        return listener.getLocalPort();
    }

    Backend backend() {
        return Backend.of("ws://127.0.0.1:" + port());
    }

    @Override
    public void close() throws IOException {
        for (Socket socket : queued) {
            socket.close();
        }
        listener.close();
    }
}
