package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.CRC32;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Legal but unusual traffic relayed exactly (matrix rows F12 and F13, and F7's valid closes from the backend):
 * control frames inside fragmented messages, unsolicited pongs, large and small messages interleaved, every byte value
 * and 4-byte UTF-8, close frames with no code or a long reason. F12 from both peers: from the client to a Jetty
 * backend, and from a raw backend (a {@link RawBackend} writing the frames right after its {@code 101}) to the client,
 * on a proxy of its own.
 */
class RelayEdgeCasesTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;
    private final SessionEvents rawEvents = new SessionEvents();
    private RawBackend rawBackend;
    private WebSocketProxy rawProxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).build();
        proxy.start();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            Clients.tearDown(rawProxy, null, rawBackend);
        } finally {
            Clients.tearDown(proxy, clients, backend);
        }
    }

    /** A proxy in front of a raw backend that runs {@code script} right after its {@code 101}, then echoes. */
    private void startRawBackend(RawBackend.AfterUpgrade script) throws Exception {
        rawBackend = RawBackend.upgradingThen(script);
        rawProxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", rawBackend.backend()).listener(rawEvents)
                .build();
        rawProxy.start();
    }

    @Test
    void relaysAPingInsideAFragmentedMessageAndKeepsTheMessageIntact() throws Exception {
        ByteArrayOutputStream frames = new ByteArrayOutputStream();
        frames.writeBytes(RawFrames.encode(false, RawFrames.TEXT, "frag-".getBytes(StandardCharsets.UTF_8), true));
        frames.writeBytes(RawFrames.encode(true, RawFrames.PING, "p1".getBytes(StandardCharsets.UTF_8), true));
        frames.writeBytes(RawFrames.encode(true, RawFrames.CONTINUATION, "ment".getBytes(StandardCharsets.UTF_8),
                true));
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/f12"))) {
            raw.sendRaw(frames.toByteArray());
            List<String> seen = new ArrayList<>();
            while (seen.size() < 2) {
                RawWebSocket.Frame frame = raw.read();
                assertThat(frame.fin()).isTrue();
                seen.add(frame.opcode() + ":" + frame.text());
            }
            assertThat(seen).containsExactlyInAnyOrder(RawFrames.PONG + ":p1", RawFrames.TEXT + ":frag-ment");
            raw.sendClose(1000, "");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(backend.texts.poll(10, TimeUnit.SECONDS)).isEqualTo("frag-ment");
    }

    /**
     * F12 from the backend: its ping between the two frames of a text message reaches the client as a ping, where the
     * backend sent it, and the message's frames around it are relayed as they came (no frame completed early, none
     * merged or reordered). The client's pong reaches the backend, and the session goes on to a clean close.
     */
    @Test
    void relaysAPingInsideAFragmentedMessageFromTheBackendAndKeepsTheMessageIntact() throws Exception {
        startRawBackend((socket, out) -> RawFrames.write(out, RawFrames.concat(
                RawFrames.encode(false, RawFrames.TEXT, "frag-".getBytes(StandardCharsets.UTF_8), false),
                RawFrames.encode(true, RawFrames.PING, "p1".getBytes(StandardCharsets.UTF_8), false),
                RawFrames.encode(true, RawFrames.CONTINUATION, "ment".getBytes(StandardCharsets.UTF_8), false))));
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(rawProxy, "/f12"))) {
            List<String> seen = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                RawWebSocket.Frame frame = raw.read();
                seen.add(frame.opcode() + (frame.fin() ? " fin " : " ") + frame.text());
            }
            assertThat(seen).as("opcode, FIN and payload of each frame the client got").containsExactly(
                    RawWebSocket.TEXT + " frag-", RawWebSocket.PING + " fin p1",
                    RawWebSocket.CONTINUATION + " fin ment");
            raw.send(true, RawWebSocket.PONG, "p1".getBytes(StandardCharsets.UTF_8));
            RawFrames.Frame pong = rawBackend.frames.poll(10, TimeUnit.SECONDS);
            assertThat(pong).as("the client's pong at the backend").isNotNull();
            assertThat(List.of(pong.opcode(), pong.text())).containsExactly(RawFrames.PONG, "p1");
            raw.sendClose(1000, "bye");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(rawBackend.nextEnd(10)).isEqualTo("close:1000");
    }

    /**
     * F12 from the backend: a pong that answers no ping reaches the client as a pong, and the session goes on (a
     * message echoed by the backend, a clean close), no error on either leg.
     */
    @Test
    void relaysAnUnsolicitedPongFromTheBackendWithoutError() throws Exception {
        startRawBackend((socket, out) -> RawFrames.write(out,
                RawFrames.encode(RawFrames.PONG, "u1".getBytes(StandardCharsets.UTF_8), false)));
        WsRecorder client = clients.connect(Clients.ws(rawProxy, "/f12"));
        assertThat(client.next()).as("the client's first event").isEqualTo(new WsRecorder.Pong("u1"));
        client.sendText("still open");
        assertThat(client.nextText()).isEqualTo("still open");
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
        assertThat(rawBackend.nextEnd(10)).isEqualTo("close:1000");
        List<RawFrames.Frame> atBackend = new ArrayList<>(rawBackend.frames);
        assertThat(atBackend).as("frames the backend got").hasSize(2);
        assertThat(List.of(atBackend.get(0).opcode(), atBackend.get(0).text()))
                .containsExactly(RawFrames.TEXT, "still open");
        RawFrames.assertCloseFrame(atBackend.get(1), 1000, "bye");
    }

    /**
     * The proxy trusts a short read that ends a message (it does not read the socket again before registering for
     * the next bytes, see {@code WebSocketEndPoints}, "Short reads"), and reads on after one that ends inside a frame
     * or inside a fragmented message. Two messages, the first in two frames, written in two pieces split at every
     * byte (in a header, in a payload, between the fragments, between the messages), the second piece close behind
     * the first: every message reaches the backend and comes back, in order.
     */
    @Test
    void relaysMessagesWhoseBytesArriveInPiecesEndingAnywhere() throws Exception {
        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        stream.writeBytes(RawFrames.encode(false, RawFrames.TEXT, "first, ".getBytes(StandardCharsets.UTF_8), true));
        stream.writeBytes(RawFrames.encode(true, RawFrames.CONTINUATION,
                "in two frames".getBytes(StandardCharsets.UTF_8), true));
        stream.writeBytes(RawFrames.text("second", true));
        byte[] bytes = stream.toByteArray();
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/pieces"))) {
            raw.socket.setTcpNoDelay(true);
            for (int split = 1; split < bytes.length; split++) {
                raw.sendRaw(Arrays.copyOfRange(bytes, 0, split));
                raw.sendRaw(Arrays.copyOfRange(bytes, split, bytes.length));
                assertThat(raw.read().text()).as("split at %d", split).isEqualTo("first, in two frames");
                assertThat(raw.read().text()).as("split at %d", split).isEqualTo("second");
            }
            raw.sendClose(1000, "");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
    }

    @Test
    void relaysAnUnsolicitedPongWithoutError() throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/f12"));
        client.session.sendPong(ByteBuffer.wrap("u1".getBytes(StandardCharsets.UTF_8)), Callback.NOOP);
        assertThat(backend.pongs.poll(10, TimeUnit.SECONDS)).isEqualTo("u1");
        client.sendText("still open");
        assertThat(client.nextText()).isEqualTo("still open");
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
    }

    /**
     * The backend's close reaches the client as the backend sent it, payload byte for byte: an empty close frame (no
     * code, 1005) as an empty close frame, not a made-up 1000; 1000, 3000 and 4999 with a reason of multi-byte UTF-8,
     * up to the 123 bytes a close frame carries, or none. The client's answer reaches the backend the same way, and the
     * listener reports both as the peers sent them, the backend as the initiator. The mirror of {@code
     * ClientFramingVariantsTest}'s valid closes.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backendCloses")
    void relaysTheBackendsCloseVerbatimAndTheClientsAnswerBack(String name, byte[] payload, int code, String reason)
            throws Exception {
        BlockingQueue<RawFrames.Frame> answers = new LinkedBlockingQueue<>();
        startRawBackend((socket, out) -> {
            RawFrames.write(out, RawFrames.encode(RawFrames.CLOSE, payload, false));
            answers.add(RawFrames.read(socket.getInputStream()));
        });
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(rawProxy, "/bye"))) {
            RawWebSocket.Frame close = raw.read();
            assertThat(close.opcode()).as("a close frame").isEqualTo(RawWebSocket.CLOSE);
            assertThat(close.payload()).as("the close payload the client got").isEqualTo(payload);
            raw.send(true, RawWebSocket.CLOSE, payload);
            RawFrames.Frame answer = answers.poll(10, TimeUnit.SECONDS);
            assertThat(answer).as("the client's answer at the backend").isNotNull();
            assertThat(answer.opcode()).isEqualTo(RawFrames.CLOSE);
            assertThat(answer.payload()).as("the close payload the backend got").isEqualTo(payload);
        }
        SessionClose close = rawEvents.nextClose();
        assertThat(List.of(close.initiator(), close.backendCode(), close.backendReason(), close.clientCode(),
                close.clientReason())).containsExactly(SessionClose.Initiator.BACKEND, code, reason, code, reason);
    }

    static Stream<Arguments> backendCloses() {
        String longest = "\u00FC".repeat(61) + "!"; // 123 bytes, the most a close frame carries
        return Stream.of(
                Arguments.of("no code", new byte[0], 1005, ""),
                Arguments.of("1000 with a reason", closePayload(1000, "bye \u2713 \uD83D\uDE00"), 1000,
                        "bye \u2713 \uD83D\uDE00"),
                Arguments.of("3000 without a reason", closePayload(3000, ""), 3000, ""),
                Arguments.of("4999 with a 123-byte reason", closePayload(4999, longest), 4999, longest));
    }

    private static byte[] closePayload(int code, String reason) {
        byte[] text = reason.getBytes(StandardCharsets.UTF_8);
        byte[] payload = new byte[2 + text.length];
        payload[0] = (byte) (code >>> 8);
        payload[1] = (byte) code;
        System.arraycopy(text, 0, payload, 2, text.length);
        return payload;
    }

    /** nginx's proxy_websocket.t pattern: large and small messages interleaved, checked byte for byte by CRC. */
    @Test
    void relaysInterleavedLargeAndSmallMessagesInOrderAndByteExact() throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/f13"));
        List<Long> sentCrcs = new ArrayList<>();
        List<String> sentTexts = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            byte[] large = new byte[48 * 1024 + i];
            for (int j = 0; j < large.length; j++) {
                large[j] = (byte) (j + i); // every byte value, shifted per message
            }
            sentCrcs.add(crc(large));
            sentTexts.add("small " + i + " \uD83D\uDE00 \u20AC");
            client.session.sendBinary(ByteBuffer.wrap(large), Callback.NOOP);
            client.sendText(sentTexts.get(i));
        }
        for (int i = 0; i < 10; i++) {
            byte[] echoed = client.nextBinary();
            assertThat(echoed).hasSize(48 * 1024 + i);
            assertThat(crc(echoed)).as("CRC of large message %s", i).isEqualTo(sentCrcs.get(i));
            assertThat(client.nextText()).isEqualTo(sentTexts.get(i));
        }
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
    }

    private static long crc(byte[] bytes) {
        CRC32 crc = new CRC32();
        crc.update(bytes);
        return crc.getValue();
    }
}
