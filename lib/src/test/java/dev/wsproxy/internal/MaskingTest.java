package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.WebSocketClient;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.internal.Generator;
import org.eclipse.jetty.websocket.core.internal.Parser;
import org.junit.jupiter.api.Test;

import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.ProxySession;
import dev.wsproxy.TestBackend;
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
            for (boolean sliced : new boolean[] {false, true}) {
                for (int length : LENGTHS) {
                    for (int offset : OFFSETS) {
                        byte[] payload = bytes(length);
                        byte[] around = bytes(offset + 9);
                        byte[] mask = bytes(4);
                        ByteBuffer jettys = framed(payload, offset, direct, around);
                        ByteBuffer ours = framed(payload, offset, direct, around);
                        // The parser hands over slices of its network buffer: position 0, at an offset in memory.
                        ByteBuffer operand = sliced ? ours.slice() : ours;

                        new Frame(OpCode.BINARY, true, sliced ? jettys.slice() : jettys).setMask(mask.clone()).demask();
                        Masking.unmask(operand, mask);

                        String what = (direct ? "direct" : "heap") + (sliced ? " slice" : "") + ", " + length
                                + " bytes at " + offset;
                        assertThat(all(ours)).as(what).isEqualTo(all(jettys));
                        assertThat(operand.position()).as(what).isEqualTo(sliced ? 0 : offset);
                        assertThat(operand.remaining()).as(what).isEqualTo(length);
                        if (length >= 4) {
                            assertThat(all(ours)).as("%s: changed", what).isNotEqualTo(all(framed(payload, offset,
                                    direct, around)));
                        }
                    }
                }
            }
        }
    }

    @Test
    void unmasksAsTheRfcSaysWhateverTheBuffersByteOrder() {
        byte[] payload = bytes(29);
        byte[] mask = bytes(4);
        ByteBuffer little = ByteBuffer.wrap(payload.clone()).order(ByteOrder.LITTLE_ENDIAN);

        Masking.unmask(little, mask);

        byte[] expected = new byte[payload.length];
        for (int i = 0; i < payload.length; i++) {
            expected[i] = (byte) (payload[i] ^ mask[i % 4]); // RFC 6455 §5.3, octet i XOR key octet i MOD 4
        }
        assertThat(little.array()).isEqualTo(expected);
    }

    /**
     * A client's stream, masked: text, a 300-byte binary (16-bit length), a fragmented message with a ping between
     * its fragments, an empty pong, a close with a reason.
     */
    private byte[] maskedClientStream() {
        return maskedClientStream(new ArrayList<>());
    }

    /** The stream, with where each of its frames ends added to {@code frameEnds}. */
    private byte[] maskedClientStream(List<Integer> frameEnds) {
        java.io.ByteArrayOutputStream stream = new java.io.ByteArrayOutputStream();
        maskedFrame(stream, frameEnds, 0x80 | OpCode.TEXT,
                "hello, world".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        maskedFrame(stream, frameEnds, 0x80 | OpCode.BINARY, bytes(300));
        maskedFrame(stream, frameEnds, OpCode.BINARY, bytes(5));
        maskedFrame(stream, frameEnds, 0x80 | OpCode.PING, bytes(3));
        maskedFrame(stream, frameEnds, 0x80 | OpCode.CONTINUATION, bytes(9));
        maskedFrame(stream, frameEnds, 0x80 | OpCode.PONG, new byte[0]);
        byte[] reason = "bye".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] close = new byte[2 + reason.length];
        close[0] = (byte) (1000 >> 8);
        close[1] = (byte) (1000 & 0xFF);
        System.arraycopy(reason, 0, close, 2, reason.length);
        maskedFrame(stream, frameEnds, 0x80 | OpCode.CLOSE, close);
        return stream.toByteArray();
    }

    private void maskedFrame(java.io.ByteArrayOutputStream stream, List<Integer> frameEnds, int firstByte,
            byte[] payload) {
        stream.write(firstByte);
        if (payload.length < 126) {
            stream.write(0x80 | payload.length);
        } else {
            stream.write(0x80 | 126);
            stream.write(payload.length >> 8);
            stream.write(payload.length & 0xFF);
        }
        byte[] mask = bytes(4);
        stream.writeBytes(mask);
        for (int i = 0; i < payload.length; i++) {
            stream.write(payload[i] ^ mask[i % 4]);
        }
        frameEnds.add(stream.size());
    }

    /** Every frame the parser makes of the stream read in two pieces, split at {@code split}, described. */
    private static List<String> parse(Parser parser, byte[] stream, int split, boolean direct) {
        List<String> frames = new ArrayList<>();
        for (int[] piece : new int[][] {{0, split}, {split, stream.length}}) {
            ByteBuffer read = direct ? ByteBuffer.allocateDirect(piece[1] - piece[0])
                    : ByteBuffer.allocate(piece[1] - piece[0]);
            read.put(stream, piece[0], piece[1] - piece[0]).flip();
            Frame.Parsed frame;
            while ((frame = parser.parse(read)) != null) {
                String description = OpCode.name(frame.getOpCode()) + (frame.isFin() ? " fin " : " ")
                        + java.util.HexFormat.of().formatHex(BufferUtil.toArray(frame.getPayload()));
                if (frame.getOpCode() == OpCode.CLOSE) {
                    description += " " + frame.getCloseStatus().getCode() + " " + frame.getCloseStatus().getReason();
                }
                frames.add(description);
                frame.close();
            }
            assertThat(read.hasRemaining()).as("the parser took the whole read").isFalse();
        }
        return frames;
    }

    @Test
    void parsesAMaskedClientStreamAsJettysParserDoesWhereverTheReadsSplitIt() {
        byte[] stream = maskedClientStream();
        // Large frames whole; frames auto-fragmented in reads; and at most 7 bytes a frame, which rotates the mask
        // for each next fragment by 3.
        long[][] settings = {{65536, 0}, {65536, 1}, {7, 1}};
        for (long[] setting : settings) {
            Configuration.ConfigurationCustomizer configuration = new Configuration.ConfigurationCustomizer();
            configuration.setMaxFrameSize(setting[0]);
            configuration.setAutoFragment(setting[1] == 1);
            for (boolean direct : new boolean[] {true, false}) {
                for (int split = 0; split <= stream.length; split++) {
                    List<String> jettys = parse(new Parser(ByteBufferPool.NON_POOLING, configuration), stream, split,
                            direct);
                    List<String> ours = parse(new Masking.UnmaskingParser(ByteBufferPool.NON_POOLING, configuration),
                            stream, split, direct);
                    assertThat(ours).as("max frame %d, auto-fragment %d, split at %d", setting[0], setting[1], split)
                            .isEqualTo(jettys);
                }
            }
            assertThat(parse(new Masking.UnmaskingParser(ByteBufferPool.NON_POOLING, configuration), stream, 0, true))
                    .as("the stream's frames").hasSizeGreaterThanOrEqualTo(7)
                    .last().isEqualTo("CLOSE fin 03e8627965 1000 bye");
        }
    }

    @Test
    void tellsTheSocketAParseStoppedBetweenMessagesOnlyAfterAMessagesLastFrameWhereverTheReadsSplitIt() {
        List<Integer> ends = new ArrayList<>();
        byte[] stream = maskedClientStream(ends);
        // Whether each frame ends its message: the binary frame of 5 bytes is not its message's last, and the ping
        // that follows it comes inside that message.
        boolean[] endsAMessage = {true, true, false, false, true, true, true};
        assertThat(ends).hasSize(endsAMessage.length).last().isEqualTo(stream.length);
        long[][] settings = {{65536, 0}, {65536, 1}, {7, 1}};
        for (long[] setting : settings) {
            Configuration.ConfigurationCustomizer configuration = new Configuration.ConfigurationCustomizer();
            configuration.setMaxFrameSize(setting[0]);
            configuration.setAutoFragment(setting[1] == 1);
            for (int split = 1; split < stream.length; split++) {
                List<Boolean> told = new ArrayList<>();
                Parser parser = new Masking.UnmaskingParser(ByteBufferPool.NON_POOLING, configuration, told::add);
                int ended = ends.indexOf(split);
                boolean expected = ended >= 0 && endsAMessage[ended];
                for (int[] piece : new int[][] {{0, split}, {split, stream.length}}) {
                    ByteBuffer read = ByteBuffer.allocate(piece[1] - piece[0]);
                    read.put(stream, piece[0], piece[1] - piece[0]).flip();
                    told.clear();
                    // As Jetty's connection parses a read: until the read is used up.
                    while (read.hasRemaining()) {
                        Frame.Parsed frame = parser.parse(read);
                        if (frame == null) {
                            break;
                        }
                        frame.close();
                    }
                    assertThat(told).as("max frame %d, auto-fragment %d, split at %d: told after each parse",
                            setting[0], setting[1], split).isNotEmpty();
                    assertThat(told.get(told.size() - 1))
                            .as("max frame %d, auto-fragment %d, read ending at %d", setting[0], setting[1], piece[1])
                            .isEqualTo(piece[1] == stream.length || expected);
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
        for (int kinds = 0; kinds < 4; kinds++) {
            boolean direct = (kinds & 1) != 0;
            boolean directOut = (kinds & 2) != 0;
            for (int length : LENGTHS) {
                for (int offset : OFFSETS) {
                    byte[] payload = bytes(length);
                    byte[] around = bytes(offset + 9);
                    byte[] mask = bytes(4);
                    byte[] header = bytes(3);
                    ByteBuffer jettyPayload = framed(payload, offset, direct, around);
                    ByteBuffer ourPayload = framed(payload, offset, direct, around);
                    // The flusher's output buffer, in Jetty's flush mode, already holding a frame header.
                    ByteBuffer jettyOut = directOut ? BufferUtil.allocateDirect(length + 16)
                            : BufferUtil.allocate(length + 16);
                    ByteBuffer ourOut = directOut ? BufferUtil.allocateDirect(length + 16)
                            : BufferUtil.allocate(length + 16);
                    BufferUtil.append(jettyOut, ByteBuffer.wrap(header));
                    BufferUtil.append(ourOut, ByteBuffer.wrap(header));

                    jettys.generatePayload(new Frame(OpCode.BINARY, true, jettyPayload).setMask(mask.clone()), jettyOut);
                    ours.generatePayload(new Frame(OpCode.BINARY, true, ourPayload).setMask(mask.clone()), ourOut);

                    String what = (direct ? "direct" : "heap") + " to " + (directOut ? "direct" : "heap") + ", "
                            + length + " bytes at " + offset;
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
        TestBackend backend = new TestBackend("b1");
        BlockingQueue<ProxySession> opened = new LinkedBlockingQueue<>();
        WebSocketProxy proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
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
            assertThat(Masking.reportsBoundariesOn(connection(relay.clientLeg))).as("client leg's parser").isTrue();
            assertThat(Masking.reportsBoundariesOn(connection(relay.backendLeg))).as("backend leg's parser").isTrue();
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
            backend.close();
        }
    }

    private static org.eclipse.jetty.websocket.core.WebSocketConnection connection(Relay.Leg leg) {
        return ((WebSocketCoreSession) leg.session).getConnection();
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
