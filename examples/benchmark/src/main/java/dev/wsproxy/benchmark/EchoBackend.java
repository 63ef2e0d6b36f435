package dev.wsproxy.benchmark;

import java.io.IOException;
import java.time.Duration;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.server.WebSocketUpgradeHandler;

/**
 * The echo backend: a Jetty core WebSocket server that sends every data frame back as it came (opcode, FIN and
 * fragments kept), without decoding text or assembling messages, so it costs as little as a Jetty endpoint can.
 *
 * <p>Each session demands one frame, echoes it, and demands the next when the echo has been written; the frame's
 * buffer is released at that moment too. Pings are answered with pongs; Jetty answers close frames.
 */
public final class EchoBackend implements AutoCloseable {

    /** Read buffer and largest frame; larger frames arrive (and are echoed) in fragments of this size. */
    static final int FRAME_BUFFER_SIZE = 64 * 1024;

    private final Server server;
    private final ServerConnector connector;

    private EchoBackend(Server server, ServerConnector connector) {
        this.server = server;
        this.connector = connector;
    }

    /** Starts an echo server on {@code 127.0.0.1:port} (0 for any free port). */
    public static EchoBackend start(int port) throws Exception {
        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setName("echo");
        Server server = new Server(threads);
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(port);
        // Handshake storms and 10,000-connection ramps arrive in bursts.
        connector.setAcceptQueueSize(4096);
        connector.setIdleTimeout(Duration.ofHours(1).toMillis());
        server.addConnector(connector);
        WebSocketUpgradeHandler upgrades = new WebSocketUpgradeHandler();
        upgrades.addMapping("/*", (request, response, callback) -> new Echo());
        upgrades.getConfiguration().setIdleTimeout(Duration.ofHours(1));
        upgrades.getConfiguration().setInputBufferSize(FRAME_BUFFER_SIZE);
        upgrades.getConfiguration().setMaxFrameSize(FRAME_BUFFER_SIZE);
        upgrades.getConfiguration().setAutoFragment(true);
        server.setHandler(upgrades);
        server.start();
        return new EchoBackend(server, connector);
    }

    /** The bound port. */
    public int port() {
        return connector.getLocalPort();
    }

    @Override
    public void close() throws IOException {
        try {
            server.stop();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("stop interrupted", e);
        } catch (Exception e) {
            throw new IOException("stop: " + e, e);
        }
    }

    /** One echo session. */
    static final class Echo implements FrameHandler {

        private CoreSession session;

        @Override
        public void onOpen(CoreSession coreSession, Callback callback) {
            this.session = coreSession;
            callback.succeeded();
            coreSession.demand();
        }

        @Override
        public void onFrame(Frame frame, Callback callback) {
            switch (frame.getOpCode()) {
                case OpCode.TEXT, OpCode.BINARY, OpCode.CONTINUATION ->
                    // A new frame on the same payload: the parsed one carries the client's mask flag.
                    session.sendFrame(new Frame(frame.getOpCode(), frame.isFin(), frame.getPayload()),
                            new ThenDemand(callback), false);
                case OpCode.PING -> session.sendFrame(new Frame(OpCode.PONG, frame.getPayload()),
                        new ThenDemand(callback), false);
                case OpCode.CLOSE -> callback.succeeded();
                default -> {
                    callback.succeeded();
                    session.demand();
                }
            }
        }

        @Override
        public void onError(Throwable cause, Callback callback) {
            callback.succeeded();
        }

        @Override
        public void onClosed(org.eclipse.jetty.websocket.core.CloseStatus closeStatus, Callback callback) {
            callback.succeeded();
        }

        /** Releases the received frame and demands the next once the echo is written. */
        private final class ThenDemand implements Callback, Invocable {
            private final Callback frameCallback;

            ThenDemand(Callback frameCallback) {
                this.frameCallback = frameCallback;
            }

            @Override
            public void succeeded() {
                frameCallback.succeeded();
                session.demand();
            }

            @Override
            public void failed(Throwable failure) {
                frameCallback.failed(failure);
            }

            @Override
            public InvocationType getInvocationType() {
                return InvocationType.NON_BLOCKING;
            }
        }
    }
}
