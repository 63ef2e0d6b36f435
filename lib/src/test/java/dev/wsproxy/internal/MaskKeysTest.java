package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

class MaskKeysTest {

    /** A stand-in for the strong generator: the big-endian ints 0, 1, 2... in order, counting its calls. */
    private static final class Counting extends Random {
        private static final long serialVersionUID = 1L;
        private int next;
        private int bytesOut;
        int calls;

        @Override
        public synchronized void nextBytes(byte[] bytes) {
            calls++;
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) (next >>> (24 - 8 * (bytesOut++ & 3)));
                if ((bytesOut & 3) == 0) {
                    next++;
                }
            }
        }

        static byte[] stream(int length) {
            byte[] bytes = new byte[length];
            new Counting().nextBytes(bytes);
            return bytes;
        }
    }

    @Test
    void handsOutTheSourcesBytesInOrderEachOnceWithOneDrawPerBlock() {
        Counting source = new Counting();
        MaskKeys keys = new MaskKeys(source);
        ByteArrayOutputStream drawn = new ByteArrayOutputStream();
        for (int i = 0; i < 600; i++) {
            byte[] key = new byte[4];
            keys.nextBytes(key);
            drawn.writeBytes(key);
        }

        assertThat(drawn.toByteArray()).isEqualTo(Counting.stream(2400));
        assertThat(source.calls).isEqualTo((2400 + MaskKeys.BLOCK - 1) / MaskKeys.BLOCK);
    }

    @Test
    void drawsOfAnyLengthCrossBlocksWithoutLosingOrRepeatingBytes() {
        Counting source = new Counting();
        MaskKeys keys = new MaskKeys(source);
        ByteArrayOutputStream drawn = new ByteArrayOutputStream();
        int[] lengths = {1, 3, 0, 7, MaskKeys.BLOCK - 11, MaskKeys.BLOCK, 2 * MaskKeys.BLOCK + 5, 4, 1};
        for (int length : lengths) {
            byte[] bytes = new byte[length];
            keys.nextBytes(bytes);
            drawn.writeBytes(bytes);
        }

        assertThat(drawn.toByteArray()).isEqualTo(Counting.stream(drawn.size()));
    }

    @Test
    void theOtherRandomMethodsDrawFromTheSameBlocksAndIgnoreSeeds() {
        MaskKeys keys = new MaskKeys(new Counting());
        keys.setSeed(42);

        assertThat(keys.nextInt()).isZero();
        assertThat(keys.nextInt()).isEqualTo(1);
        byte[] key = new byte[4];
        keys.nextBytes(key);
        assertThat(ByteBuffer.wrap(key).getInt()).isEqualTo(2);
        assertThat(keys.nextLong()).isEqualTo(3L << 32 | 4);
    }

    @Test
    void threadsDrawingAtOnceNeverGetTheSameBytes() throws Exception {
        Counting source = new Counting();
        MaskKeys keys = new MaskKeys(source);
        int threads = 4;
        int perThread = 20 * MaskKeys.BLOCK;
        CyclicBarrier start = new CyclicBarrier(threads);
        List<CompletableFuture<List<Integer>>> draws = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            draws.add(CompletableFuture.supplyAsync(() -> {
                awaitQuietly(start);
                List<Integer> mine = new ArrayList<>();
                byte[] key = new byte[4];
                for (int i = 0; i < perThread; i++) {
                    keys.nextBytes(key);
                    mine.add(ByteBuffer.wrap(key).getInt());
                }
                return mine;
            }, runnable -> new Thread(runnable).start()));
        }

        Set<Integer> seen = new HashSet<>();
        for (CompletableFuture<List<Integer>> draw : draws) {
            seen.addAll(draw.get(30, TimeUnit.SECONDS));
        }
        // Every key a distinct int of the source's stream, and no block drawn that was not used up or in use.
        assertThat(seen.size()).isEqualTo(threads * perThread);
        assertThat(source.calls).isEqualTo(threads * perThread * 4 / MaskKeys.BLOCK);
    }

    private static void awaitQuietly(CyclicBarrier barrier) {
        try {
            barrier.await(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
