package dev.wsproxy;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

import org.eclipse.jetty.util.ssl.SslContextFactory;

/**
 * Certificates made with the JDK's {@code keytool} when a test first asks for them, in a temporary directory: nothing
 * secret is committed. Each is self-signed, so trusting one means trusting exactly that certificate.
 */
final class TestCertificates {

    static final String PASSWORD = "test-only-password";

    /** A key store with one self-signed certificate, and that certificate alone in PEM and in a PKCS#12 store. */
    record Certificate(Path keyStore, Path pem, Path trustStore) {

        SslContextFactory.Server server() {
            SslContextFactory.Server server = new SslContextFactory.Server();
            server.setKeyStorePath(keyStore.toString());
            server.setKeyStorePassword(PASSWORD);
            return server;
        }

        /** A plain JDK TLS socket to {@code uri}'s host and port that trusts this certificate only. */
        SSLSocket socketTo(URI uri) throws Exception {
            return socketTo(uri, 0);
        }

        /** Like {@link #socketTo(URI)} with a receive buffer of the given size (0: the system's default). */
        SSLSocket socketTo(URI uri, int receiveBufferSize) throws Exception {
            KeyStore trust = KeyStore.getInstance(trustStore.toFile(), PASSWORD.toCharArray());
            TrustManagerFactory trustManagers = TrustManagerFactory.getInstance(
                    TrustManagerFactory.getDefaultAlgorithm());
            trustManagers.init(trust);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, trustManagers.getTrustManagers(), null);
            SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket();
            if (receiveBufferSize > 0) {
                socket.setReceiveBufferSize(receiveBufferSize);
            }
            socket.setSoTimeout(10_000);
            socket.connect(new InetSocketAddress(uri.getHost(), uri.getPort()), 5_000);
            return socket;
        }

        /** A client factory that trusts this certificate only (and verifies host names). */
        SslContextFactory.Client trustingClient() {
            SslContextFactory.Client client = new SslContextFactory.Client();
            client.setTrustStorePath(trustStore.toString());
            client.setTrustStorePassword(PASSWORD);
            return client;
        }

        /** A client factory that presents this certificate (mutual TLS) and trusts {@code server}'s only. */
        SslContextFactory.Client presentedTo(Certificate server) {
            SslContextFactory.Client client = server.trustingClient();
            client.setKeyStorePath(keyStore.toString());
            client.setKeyStorePassword(PASSWORD);
            return client;
        }
    }

    /**
     * Client certificates for mutual TLS, made the first time a test uses one (this holder class is initialised
     * then), so that the other TLS tests do not wait for their keytool runs.
     */
    static final class ClientCertificates {

        /** A CA for client certificates, {@code CN=client-ca}: its {@code pem} is what a server trusts. */
        static final Certificate CA;
        /** {@code CN=alice}, issued by {@link #CA}; its key store holds the chain (alice, the CA), its pem the leaf. */
        static final Certificate ALICE;
        /** {@code CN=bob}, issued by {@link #CA}. */
        static final Certificate BOB;
        /**
         * {@code CN=alice-impostor}, issued by another CA that is also named {@code CN=client-ca}, with a key no server
         * here trusts. A JDK client sends only a certificate whose issuer is one the server names in its request:
         * a self-signed one would never be sent, and its refusal would be that of a client without a certificate.
         */
        static final Certificate IMPOSTOR;

        static {
            // The tasks are Keytool's: a lambda here is a method of this class, which another thread cannot run until
            // this initialisation is over. The two CAs side by side, then what they issue.
            List<Certificate> authorities = madeSideBySide(List.of(
                    Keytool.authority(DIR, "client-ca", "CN=client-ca"),
                    Keytool.authority(DIR, "client-ca-impostor", "CN=client-ca")));
            CA = authorities.get(0);
            List<Certificate> issued = madeSideBySide(List.of(Keytool.issuedBy(DIR, CA, "alice"),
                    Keytool.issuedBy(DIR, CA, "bob"), Keytool.issuedBy(DIR, authorities.get(1), "alice-impostor")));
            ALICE = issued.get(0);
            BOB = issued.get(1);
            IMPOSTOR = issued.get(2);
        }

        private ClientCertificates() {
        }
    }

    /** Made the first time a test uses it, as {@link ClientCertificates} are. */
    static final class ExpiredIssuer {

        /**
         * For {@code localhost} and {@code 127.0.0.1}, valid now, issued by {@code CN=old-ca}, a CA that expired eight
         * days ago: its key store holds the chain (the certificate, the CA), its {@code pem} is the CA's certificate.
         */
        static final Certificate CHAIN;

        static {
            try {
                CHAIN = Keytool.issuedByExpiredCa(DIR);
            } catch (IOException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private ExpiredIssuer() {
        }
    }

    private static final String LOCAL_NAMES = "SAN=dns:localhost,ip:127.0.0.1";
    private static final Path DIR;
    /** For {@code localhost} and {@code 127.0.0.1}. */
    static final Certificate LOCALHOST;
    /** Also for {@code localhost} and {@code 127.0.0.1}, but a different key: trusted by nobody. */
    static final Certificate UNTRUSTED;
    /** For {@code wrong.example} only. */
    static final Certificate WRONG_HOST;
    /**
     * For {@code localhost} and {@code 127.0.0.1}, signed by a test CA and expired eight days ago; its {@code pem} is
     * the CA's certificate. (A self-signed certificate would not do: a trust anchor's dates are not checked.)
     */
    static final Certificate EXPIRED;
    /** The proxy's client certificate, for mutual TLS. */
    static final Certificate PROXY_CLIENT;

    static {
        try {
            DIR = Files.createTempDirectory("wsproxy-certs");
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
        DIR.toFile().deleteOnExit();
        // The tasks call Keytool only: a method of this class would wait for this very initialisation to finish.
        List<Certificate> made = madeSideBySide(List.of(Keytool.selfSigned(DIR, "localhost", LOCAL_NAMES),
                Keytool.selfSigned(DIR, "untrusted", LOCAL_NAMES),
                Keytool.selfSigned(DIR, "wrong-host", "SAN=dns:wrong.example"),
                Keytool.expired(DIR),
                Keytool.selfSigned(DIR, "proxy-client", "SAN=dns:proxy.internal")));
        LOCALHOST = made.get(0);
        UNTRUSTED = made.get(1);
        WRONG_HOST = made.get(2);
        EXPIRED = made.get(3);
        PROXY_CLIENT = made.get(4);
    }

    private TestCertificates() {
    }

    /**
     * The certificates of {@code tasks}, in their order, made side by side: keytool is a JVM start per call. For the
     * static initialisers, whose failure this is. The tasks run on other threads, so they must be {@link Keytool}'s:
     * a lambda or method of a class still being initialised would wait for that initialisation, which waits for it.
     */
    private static List<Certificate> madeSideBySide(List<Callable<Certificate>> tasks) {
        ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
        try {
            List<Future<Certificate>> futures = new ArrayList<>();
            for (Callable<Certificate> task : tasks) {
                futures.add(pool.submit(task));
            }
            List<Certificate> made = new ArrayList<>();
            for (Future<Certificate> future : futures) {
                made.add(future.get());
            }
            return made;
        } catch (ExecutionException e) {
            throw new ExceptionInInitializerError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ExceptionInInitializerError(e);
        } finally {
            pool.shutdownNow();
        }
    }

    /** Runs keytool; nothing here touches {@link TestCertificates}' static state. */
    private static final class Keytool {

        static Callable<Certificate> selfSigned(Path dir, String name, String san) {
            return () -> create(dir, name, san);
        }

        static Callable<Certificate> issuedBy(Path dir, Certificate ca, String name) {
            return () -> issued(dir, ca, name);
        }

        /** A CA {@code name} whose subject is {@code subject}, which another CA's may be too. */
        static Callable<Certificate> authority(Path dir, String name, String subject) {
            return () -> create(dir, name, "bc:c", subject);
        }

        static Callable<Certificate> expired(Path dir) {
            return () -> expiredNow(dir);
        }

        static Certificate expiredNow(Path dir) throws IOException {
            Certificate ca = create(dir, "test-ca", "bc:c");
            Path keyStore = dir.resolve("expired.p12");
            Path request = dir.resolve("expired.csr");
            Path signed = dir.resolve("expired.pem");
            keytool(List.of("-genkeypair", "-alias", "expired", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                    "CN=expired", "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD));
            keytool(List.of("-certreq", "-alias", "expired", "-keystore", keyStore.toString(), "-storepass", PASSWORD,
                    "-file", request.toString()));
            keytool(List.of("-gencert", "-alias", "test-ca", "-keystore", ca.keyStore().toString(), "-storepass",
                    PASSWORD, "-infile", request.toString(), "-outfile", signed.toString(), "-rfc", "-startdate", "-10d",
                    "-validity", "2", "-ext", "SAN=dns:localhost,ip:127.0.0.1"));
            keytool(List.of("-importcert", "-noprompt", "-alias", "test-ca", "-file", ca.pem().toString(), "-keystore",
                    keyStore.toString(), "-storepass", PASSWORD));
            keytool(List.of("-importcert", "-alias", "expired", "-file", signed.toString(), "-keystore",
                    keyStore.toString(), "-storepass", PASSWORD));
            for (Path path : List.of(keyStore, request, signed)) {
                path.toFile().deleteOnExit();
            }
            return new Certificate(keyStore, ca.pem(), ca.trustStore());
        }

        static Certificate issuedByExpiredCa(Path dir) throws IOException {
            Path caStore = dir.resolve("old-ca.p12");
            Path caPem = dir.resolve("old-ca.pem");
            Path keyStore = dir.resolve("issued-by-old-ca.p12");
            Path request = dir.resolve("issued-by-old-ca.csr");
            Path signed = dir.resolve("issued-by-old-ca.pem");
            keytool(List.of("-genkeypair", "-alias", "old-ca", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                    "CN=old-ca", "-ext", "bc:c", "-keystore", caStore.toString(), "-storetype", "PKCS12", "-storepass",
                    PASSWORD, "-startdate", "-10d", "-validity", "2"));
            keytool(List.of("-exportcert", "-rfc", "-alias", "old-ca", "-keystore", caStore.toString(), "-storepass",
                    PASSWORD, "-file", caPem.toString()));
            keytool(List.of("-genkeypair", "-alias", "renewed", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                    "CN=renewed", "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD));
            keytool(List.of("-certreq", "-alias", "renewed", "-keystore", keyStore.toString(), "-storepass", PASSWORD,
                    "-file", request.toString()));
            keytool(List.of("-gencert", "-alias", "old-ca", "-keystore", caStore.toString(), "-storepass", PASSWORD,
                    "-infile", request.toString(), "-outfile", signed.toString(), "-rfc", "-validity", "2", "-ext",
                    LOCAL_NAMES));
            keytool(List.of("-importcert", "-noprompt", "-alias", "old-ca", "-file", caPem.toString(), "-keystore",
                    keyStore.toString(), "-storepass", PASSWORD));
            keytool(List.of("-importcert", "-alias", "renewed", "-file", signed.toString(), "-keystore",
                    keyStore.toString(), "-storepass", PASSWORD));
            for (Path path : List.of(caStore, caPem, keyStore, request, signed)) {
                path.toFile().deleteOnExit();
            }
            return new Certificate(keyStore, caPem, caStore);
        }

        /**
         * A client certificate {@code CN=name} for TLS client authentication, valid for two days, issued by
         * {@code ca} (made by {@link #create}): its key store holds the chain, its pem the leaf alone.
         */
        static Certificate issued(Path dir, Certificate ca, String name) throws IOException {
            Path keyStore = dir.resolve(name + ".p12");
            Path request = dir.resolve(name + ".csr");
            Path pem = dir.resolve(name + ".pem");
            String caAlias = ca.keyStore().getFileName().toString().replace(".p12", "");
            keytool(List.of("-genkeypair", "-alias", name, "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
                    "CN=" + name, "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD));
            keytool(List.of("-certreq", "-alias", name, "-keystore", keyStore.toString(), "-storepass", PASSWORD,
                    "-file", request.toString()));
            keytool(List.of("-gencert", "-alias", caAlias, "-keystore", ca.keyStore().toString(), "-storepass",
                    PASSWORD, "-infile", request.toString(), "-outfile", pem.toString(), "-rfc", "-validity", "2",
                    "-ext", "EKU=clientAuth"));
            keytool(List.of("-importcert", "-noprompt", "-alias", caAlias, "-file", ca.pem().toString(), "-keystore",
                    keyStore.toString(), "-storepass", PASSWORD));
            keytool(List.of("-importcert", "-alias", name, "-file", pem.toString(), "-keystore", keyStore.toString(),
                    "-storepass", PASSWORD));
            for (Path path : List.of(keyStore, request, pem)) {
                path.toFile().deleteOnExit();
            }
            return new Certificate(keyStore, pem, ca.trustStore());
        }

        static Certificate create(Path dir, String name, String san) throws IOException {
            return create(dir, name, san, "CN=" + name);
        }

        static Certificate create(Path dir, String name, String san, String subject) throws IOException {
            Path keyStore = dir.resolve(name + ".p12");
            Path pem = dir.resolve(name + ".pem");
            Path trustStore = dir.resolve(name + "-trust.p12");
            List<String> generate = new ArrayList<>(List.of("-genkeypair", "-alias", name, "-keyalg", "EC",
                    "-groupname", "secp256r1", "-dname", subject, "-ext", san, "-keystore", keyStore.toString(),
                    "-storetype", "PKCS12", "-storepass", PASSWORD, "-validity", "2"));
            keytool(generate);
            keytool(List.of("-exportcert", "-rfc", "-alias", name, "-keystore", keyStore.toString(), "-storepass",
                    PASSWORD, "-file", pem.toString()));
            keytool(List.of("-importcert", "-noprompt", "-alias", name, "-file", pem.toString(), "-keystore",
                    trustStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD));
            for (Path path : List.of(keyStore, pem, trustStore)) {
                path.toFile().deleteOnExit();
            }
            return new Certificate(keyStore, pem, trustStore);
        }

        static void keytool(List<String> arguments) throws IOException {
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
            command.addAll(arguments);
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            try {
                if (!process.waitFor(60, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    throw new IOException("keytool did not finish: " + command);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
            if (process.exitValue() != 0) {
                throw new IOException("keytool failed: " + command + "\n"
                        + new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            }
        }
    }
}
