package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.WebSocketClient;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.internal.Generator;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.ProxySession;
import dev.wsproxy.WebSocketProxy;

/** Eight-byte masking gives the bytes Jetty's own loops give, and goes into both legs of a proxied session. */
class MaskingTest {

    /** Lengths around the 4- and 8-byte steps and their tails, and a relay-sized fragment with an odd tail. */
    private static final int[] LENGTHS = {0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 15, 16, 17, 63, 64, 65, 1000, 65536 + 5};
    /** Where the payload starts in its buffer: the parser's frames are slices at any offset of a network buffer. */
    private static final int[] OFFSETS = {0, 1, 3, 6};

    private final Random random = new Random(42);

    private byte[] bytes(int length) {
        byte[] bytes = new byte[length];
        random.nextBytes(bytes);
        return bytes;
    }

    /** A buffer with {@code before} random bytes, then {@code payload}, then 9 random bytes; position at payload. */
    private ByteBuffer framed(byte[] payload, int before, boolean direct, byte[] around) {
        ByteBuffer buffer = direct ? ByteBuffer.allocateDirect(before + payload.length + 9)
                : ByteBuffer.allocate(before + payload.length + 9);
        buffer.put(around, 0, before).put(payload).put(around, before, 9);
        buffer.position(before).limit(before + payload.length);
        return buffer;
    }

    private static byte[] all(ByteBuffer buffer) {
        ByteBuffer whole = buffer.duplicate().clear();
        byte[] bytes = new byte[whole.remaining()];
        whole.get(bytes);
        return bytes;
    }

    @Test
    void unmasksInPlaceAsJettysParsedFramesDo() {
        for (boolean direct : new boolean[] {true, false}) {
            for (int length : LENGTHS) {
                for (int offset : OFFSETS) {
                    byte[] payload = bytes(length);
                    byte[] around = bytes(offset + 9);
                    byte[] mask = bytes(4);
                    ByteBuffer jettys = framed(payload, offset, direct, around);
                    ByteBuffer ours = framed(payload, offset, direct, around);

                    new Frame(OpCode.BINARY, true, jettys).setMask(mask.clone()).demask();
                    Masking.unmask(ours, mask);

                    String what = (direct ? "direct" : "heap") + ", " + length + " bytes at " + offset;
                    assertThat(all(ours)).as(what).isEqualTo(all(jettys));
                    assertThat(ours.position()).as(what).isEqualTo(offset);
                    assertThat(ours.limit()).as(what).isEqualTo(offset + length);
                    if (length >= 4) {
                        assertThat(all(ours)).as("%s: changed", what).isNotEqualTo(all(framed(payload, offset,
                                direct, around)));
                    }
                }
            }
        }
    }

    @Test
    void unmaskedParsedFramesLeaveAZeroKeyLikeJettysSoASecondPassChangesNothing() {
        byte[] payload = bytes(21);
        byte[] mask = bytes(4);
        ByteBuffer jettys = ByteBuffer.wrap(payload.clone());
        ByteBuffer ours = ByteBuffer.wrap(payload.clone());

        Frame.Parsed jettyFrame = new Frame.Parsed((byte) (0x80 | OpCode.BINARY), mask.clone(), jettys, null);
        Frame.Parsed ourFrame = new Masking.UnmaskedFrame((byte) (0x80 | OpCode.BINARY), mask.clone(), ours, null);
        ourFrame.demask();

        assertThat(all(ours)).isEqualTo(all(jettys));
        assertThat(ourFrame.getMask()).isEqualTo(jettyFrame.getMask()).containsOnly(0);
        assertThat(ourFrame.isMasked()).isEqualTo(jettyFrame.isMasked());
    }

    @Test
    void masksWhileCopyingAsJettysGeneratorDoes() {
        Generator jettys = new Generator();
        Generator ours = new Masking.MaskingGenerator();
        for (boolean direct : new boolean[] {true, false}) {
            for (int length : LENGTHS) {
                for (int offset : OFFSETS) {
                    byte[] payload = bytes(length);
                    byte[] around = bytes(offset + 9);
                    byte[] mask = bytes(4);
                    byte[] header = bytes(3);
                    ByteBuffer jettyPayload = framed(payload, offset, direct, around);
                    ByteBuffer ourPayload = framed(payload, offset, direct, around);
                    // The flusher's output buffer, in Jetty's flush mode, already holding a frame header.
                    ByteBuffer jettyOut = direct ? BufferUtil.allocateDirect(length + 16) : BufferUtil.allocate(length + 16);
                    ByteBuffer ourOut = direct ? BufferUtil.allocateDirect(length + 16) : BufferUtil.allocate(length + 16);
                    BufferUtil.append(jettyOut, ByteBuffer.wrap(header));
                    BufferUtil.append(ourOut, ByteBuffer.wrap(header));

                    jettys.generatePayload(new Frame(OpCode.BINARY, true, jettyPayload).setMask(mask.clone()), jettyOut);
                    ours.generatePayload(new Frame(OpCode.BINARY, true, ourPayload).setMask(mask.clone()), ourOut);

                    String what = (direct ? "direct" : "heap") + ", " + length + " bytes at " + offset;
                    assertThat(BufferUtil.toArray(ourOut)).as(what).isEqualTo(BufferUtil.toArray(jettyOut));
                    assertThat(ourOut.remaining()).as(what).isEqualTo(3 + length);
                    assertThat(ourPayload.position()).as(what).isEqualTo(jettyPayload.position());
                    assertThat(all(ourPayload)).as("%s: source untouched", what).isEqualTo(all(jettyPayload));
                }
            }
        }
    }

    @Test
    void copiesUnmaskedFramesAsJettysGeneratorDoes() {
        byte[] payload = bytes(37);
        ByteBuffer out = BufferUtil.allocate(64);

        new Masking.MaskingGenerator().generatePayload(new Frame(OpCode.BINARY, true, ByteBuffer.wrap(payload)), out);

        assertThat(BufferUtil.toArray(out)).isEqualTo(payload);
    }

    @Test
    void refusesToMaskIntoABufferWithoutRoomAndCopiesNothing() {
        ByteBuffer from = ByteBuffer.wrap(bytes(17));
        ByteBuffer to = ByteBuffer.allocate(16);

        assertThatThrownBy(() -> Masking.maskCopy(from, to, bytes(4))).isInstanceOf(BufferOverflowException.class);
        assertThat(from.position()).isZero();
        assertThat(to.position()).isZero();
        assertThat(to.array()).containsOnly(0);
    }

    @Test
    void reachesTheFieldsOfThePinnedJetty() {
        // Fails when a Jetty upgrade renames what Masking swaps: the proxy would silently fall back to slow loops.
        assertThat(Masking.available()).isTrue();
    }

    @Test
    void goesIntoBothLegsOfAProxiedSessionWhichRelaysEveryLengthExactly() throws Exception {
        Server backendServer = new Server();
        ServerConnector backendConnector = new ServerConnector(backendServer);
        backendConnector.setHost("127.0.0.1");
        backendServer.addConnector(backendConnector);
        WebSocketUpgradeHandler upgrades = WebSocketUpgradeHandler.from(backendServer,
                container -> {
                    container.setMaxBinaryMessageSize(1024 * 1024);
                    container.addMapping("/*", (request, response, callback) -> new Echo());
                });
        backendServer.setHandler(upgrades);
        backendServer.start();
        BlockingQueue<ProxySession> opened = new LinkedBlockingQueue<>();
        WebSocketProxy proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", Backend.of("ws://127.0.0.1:" + backendConnector.getLocalPort()))
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionOpened(ProxySession session) {
                        opened.add(session);
                    }
                })
                .build();
        WebSocketClient client = new WebSocketClient();
        try {
            URI uri = proxy.start();
            client.setMaxBinaryMessageSize(1024 * 1024);
            client.start();
            Received received = new Received();
            Session session = client.connect(received, URI.create("ws://127.0.0.1:" + uri.getPort() + "/ws/echo"))
                    .get(10, TimeUnit.SECONDS);

            Relay relay = (Relay) opened.poll(10, TimeUnit.SECONDS);
            assertThat(relay).isNotNull();
            assertThat(Masking.installedOn(connection(relay.clientLeg), Behavior.SERVER)).as("client leg").isTrue();
            assertThat(Masking.installedOn(connection(relay.backendLeg), Behavior.CLIENT)).as("backend leg").isTrue();
            List<byte[]> sent = new ArrayList<>();
            for (int length : LENGTHS) {
                byte[] payload = bytes(length);
                sent.add(payload);
                session.sendBinary(ByteBuffer.wrap(payload), Callback.NOOP);
            }
            for (byte[] payload : sent) {
                byte[] echoed = received.messages.poll(10, TimeUnit.SECONDS);
                assertThat(echoed).as("echo of %d bytes", payload.length).isEqualTo(payload);
            }
            session.close();
        } finally {
            client.stop();
            proxy.close();
            backendServer.stop();
        }
    }

    private static org.eclipse.jetty.websocket.core.WebSocketConnection connection(Relay.Leg leg) {
        return ((WebSocketCoreSession) leg.session).getConnection();
    }

    /** Public: Jetty binds endpoint methods with method handles. */
    public static final class Echo implements Session.Listener.AutoDemanding {
        private volatile Session session;

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketBinary(ByteBuffer payload, Callback callback) {
            ByteBuffer copy = ByteBuffer.allocate(payload.remaining());
            copy.put(payload).flip();
            callback.succeed();
            session.sendBinary(copy, Callback.NOOP);
        }
    }

    /** Public: Jetty binds endpoint methods with method handles. */
    public static final class Received implements Session.Listener.AutoDemanding {
        final BlockingQueue<byte[]> messages = new LinkedBlockingQueue<>();

        @Override
        public void onWebSocketBinary(ByteBuffer payload, Callback callback) {
            messages.add(BufferUtil.toArray(payload));
            callback.succeed();
        }
    }
}
