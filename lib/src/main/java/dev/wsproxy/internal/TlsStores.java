package dev.wsproxy.internal;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.UnrecoverableKeyException;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.function.Consumer;

import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;

/**
 * Reads key and trust stores eagerly, so that a configuration mistake fails when the proxy is configured, with a
 * message naming the file, rather than at the first {@code wss://} connection.
 */
public final class TlsStores {

    private static final String[] OLD_PROTOCOLS = {"TLSv1", "TLSv1.1"};
    private static final byte[] JKS_MAGIC = {(byte) 0xFE, (byte) 0xED, (byte) 0xFE, (byte) 0xED};
    private static final byte[] JCEKS_MAGIC = {(byte) 0xCE, (byte) 0xCE, (byte) 0xCE, (byte) 0xCE};

    private TlsStores() {
    }

    /**
     * Loads a PKCS#12 or JKS store that must hold at least one private key with its certificate chain, every key
     * readable with the store's password. Jetty's key manager reads every key with that one password when the proxy
     * starts: a JKS store whose keys have passwords of their own ({@code keytool -keypass}) would open here and fail
     * there with "Cannot recover key", naming no file. So each key is recovered now. A secret key ({@code keytool
     * -genseckey}) is a key entry too, but serves nothing: a store with no other key started, and every handshake
     * then failed without a word in the log.
     */
    public static KeyStore loadKeyStore(Path path, String password) {
        byte[] bytes = read(path, "keyStore");
        KeyStore store = load(path, bytes, password.toCharArray(), "keyStore", "a PKCS#12 or JKS store");
        boolean hasKey = false;
        boolean hasOtherKey = false;
        try {
            for (String alias : Collections.list(store.aliases())) {
                if (store.isKeyEntry(alias)) {
                    recoverKey(path, store, alias, password);
                    Certificate[] chain = store.getCertificateChain(alias);
                    if (store.entryInstanceOf(alias, KeyStore.PrivateKeyEntry.class) && chain != null
                            && chain.length > 0) {
                        hasKey = true;
                    } else {
                        hasOtherKey = true;
                    }
                }
            }
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("keyStore: " + path + " (cannot be read: " + e.getMessage() + ")", e);
        }
        if (!hasKey) {
            throw new IllegalArgumentException("keyStore: " + path + " (expected: a store with a private key and its "
                    + "certificate chain; this one holds " + (hasOtherKey
                            ? "no private key with a certificate chain, only secret keys" : "certificates only") + ")");
        }
        return store;
    }

    private static void recoverKey(Path path, KeyStore store, String alias, String password)
            throws GeneralSecurityException {
        try {
            store.getKey(alias, password.toCharArray());
        } catch (UnrecoverableKeyException e) {
            throw new IllegalArgumentException("keyStore: " + path + " (cannot be read: wrong password for key '"
                    + alias + "'; expected: the store's password, which is used for its keys too)", e);
        }
    }

    /**
     * Loads trusted certificates: a PEM bundle, DER certificates ({@code .cer}, {@code .crt}, also a PKCS#7
     * {@code .p7b}), or a PKCS#12 / JKS store ({@code password} may be {@code null} when its certificates are not
     * encrypted).
     */
    public static KeyStore loadTrustStore(Path path, @Nullable String password) {
        byte[] bytes = read(path, "trustStore");
        KeyStore store;
        Collection<? extends Certificate> der;
        if (isPem(bytes)) {
            store = fromPem(path, bytes);
        } else if (bytes.length > 0 && bytes[0] == 0x30 && (der = derCertificates(bytes)) != null) {
            store = inMemory(der);
        } else {
            store = load(path, bytes, password == null ? null : password.toCharArray(), "trustStore",
                    "PEM certificates (-----BEGIN CERTIFICATE-----), DER certificates, or a PKCS#12 or JKS store");
        }
        try {
            for (String alias : Collections.list(store.aliases())) {
                if (store.isCertificateEntry(alias) || store.getCertificate(alias) != null) {
                    return store;
                }
            }
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("trustStore: " + path + " (cannot be read: " + e.getMessage() + ")", e);
        }
        throw new IllegalArgumentException("trustStore: " + path + " (expected: at least one certificate"
                + (password == null ? "; a store whose certificates are encrypted needs its password" : "") + ")");
    }

    /**
     * Adds TLS 1.0 and 1.1 to the factory's excluded protocols: the proxy never speaks them. A factory already started
     * has chosen its protocols: it is refused if it chose one of those.
     *
     * @throws IllegalStateException if the factory is started with TLS 1.0 or 1.1 selected
     */
    public static void excludeOldProtocols(SslContextFactory factory) {
        if (factory.isStarted()) {
            for (String selected : factory.getSelectedProtocols()) {
                for (String old : OLD_PROTOCOLS) {
                    if (old.equals(selected)) {
                        throw new IllegalStateException("the SslContextFactory was started with " + selected
                                + " enabled (expected: TLS 1.2 or later only; exclude TLSv1 and TLSv1.1, or let the "
                                + "proxy start the factory)");
                    }
                }
            }
        }
        factory.addExcludeProtocols(OLD_PROTOCOLS);
    }

    /**
     * Starts a factory of the user's ({@code ServerTls.custom}, {@code BackendTls.custom}) unless it is started, so
     * that no proxy stops it: Jetty's containers manage a bean only when it is not running as they add it. A factory
     * the proxy started and stopped with itself was stopped under the proxy made from it with {@code toBuilder()},
     * which found it running and shared it, and under a user who kept it to reload it.
     *
     * @throws IllegalStateException if the factory does not start
     */
    public static void startYours(SslContextFactory factory, Object configuration) {
        try {
            factory.start();
        } catch (Exception e) {
            throw new IllegalStateException(configuration + ": the SslContextFactory did not start: " + e.getMessage(),
                    e);
        }
    }

    /**
     * Starts and stops a factory made with stores read for a reload, to find what would fail in the running factory's
     * {@code reload}: Jetty's reload empties the factory before it loads, and a load that fails leaves it failing
     * every connection ("SslContextFactory reload failed") until a reload succeeds. The running factory then loads
     * the same stores the same way.
     *
     * @throws IllegalArgumentException if the factory does not start
     */
    public static void tryOut(SslContextFactory factory, Object configuration) {
        try {
            factory.start();
            factory.stop();
        } catch (Exception e) {
            throw new IllegalArgumentException(configuration + ": " + e.getMessage(), e);
        }
    }

    /**
     * Hands stores that {@link #tryOut} accepted to a running factory: connections it makes from now on use them;
     * those made before keep theirs.
     *
     * @throws IllegalStateException if the factory's reload fails all the same
     */
    public static void reload(SslContextFactory factory, Consumer<SslContextFactory> change, Object configuration) {
        try {
            factory.reload(change);
        } catch (Exception e) {
            throw new IllegalStateException(configuration + ": the reload failed: " + e.getMessage(), e);
        }
    }

    /**
     * Logs a warning for each certificate of a started factory's keys that is not valid now (expired, or not yet
     * valid), naming {@code source} (the file) and the dates: the proxy serves it all the same, as nginx does, and
     * clients (backends, for a client certificate) refuse it, so the log is where an operator learns why. Every
     * certificate of each key's chain is checked, not the key's own alone: the chain is sent whole, and clients refuse
     * a chain whose intermediate CA has expired, however valid the key's certificate is (a store rebuilt with the
     * renewed certificate but the chain file of the last time). Then the same for the trusted certificates the factory
     * verifies peers with: a client factory's unless it trusts all, a server factory's only when it asks clients for
     * certificates (else its trust store, by default its key store, is not used). The JDK does not check the dates of
     * the trusted certificate a chain ends in (checked: an expired CA's chains, and an expired self-signed certificate
     * trusted as itself, are accepted), so nothing fails; but OpenSSL checks them, so the same chains fail elsewhere,
     * and a CA's certificate that has expired usually means that a successor now issues the certificates, which this
     * store may not trust.
     */
    public static void warnIfNotValid(SslContextFactory factory, Object source, Logger log) {
        KeyStore store;
        KeyStore trusted;
        try {
            store = factory.getKeyStore();
            trusted = verifiesPeers(factory) ? factory.getTrustStore() : null;
        } catch (RuntimeException e) {
            return; // not started, or failed: its own error says why
        }
        Date now = new Date();
        if (store != null) {
            try {
                for (String alias : Collections.list(store.aliases())) {
                    Certificate[] chain = store.isKeyEntry(alias) ? store.getCertificateChain(alias) : null;
                    for (int i = 0; chain != null && i < chain.length; i++) {
                        if (chain[i] instanceof X509Certificate certificate) {
                            warnIfNotValid(certificate, now, source, i == 0 ? "the certificate of '" + alias + "'"
                                    : "certificate " + (i + 1) + " of " + chain.length + " of the chain of '" + alias
                                            + "'", i == 0 ? "clients refuse it" : CHAIN_NOT_VALID, log);
                        }
                    }
                }
            } catch (GeneralSecurityException e) {
                log.debug("Could not read the certificates of {}", source, e);
            }
        }
        if (trusted != null) {
            String path = factory.getTrustStorePath();
            Object trustSource = path != null ? path : source;
            try {
                for (String alias : Collections.list(trusted.aliases())) {
                    if (trusted.isCertificateEntry(alias)
                            && trusted.getCertificate(alias) instanceof X509Certificate certificate) {
                        warnIfNotValid(certificate, now, trustSource, "the trusted certificate '" + alias + "'",
                                TRUSTED_NOT_VALID, log);
                    }
                }
            } catch (GeneralSecurityException e) {
                log.debug("Could not read the trusted certificates of {}", trustSource, e);
            }
        }
    }

    private static final String CHAIN_NOT_VALID = "clients refuse the whole chain, however valid the certificate "
            + "it begins with is: rebuild the store with the issuer's current chain";

    private static final String TRUSTED_NOT_VALID = "chains that end in it are still accepted (the JDK does not "
            + "check a trusted certificate's dates; OpenSSL does): renew or remove it";

    /** Whether a factory verifies its peers' certificates against its trust store. */
    private static boolean verifiesPeers(SslContextFactory factory) {
        if (factory instanceof SslContextFactory.Server server) {
            return server.getNeedClientAuth() || server.getWantClientAuth();
        }
        return !factory.isTrustAll();
    }

    private static void warnIfNotValid(X509Certificate certificate, Date now, Object source, String what,
            String consequence, Logger log) {
        if (now.after(certificate.getNotAfter())) {
            log.warn("{}: {} ({}) expired on {}: {}", source, what, certificate.getSubjectX500Principal().getName(),
                    certificate.getNotAfter().toInstant(), consequence);
        } else if (now.before(certificate.getNotBefore())) {
            log.warn("{}: {} ({}) is not valid before {} (until {}): {}", source, what,
                    certificate.getSubjectX500Principal().getName(), certificate.getNotBefore().toInstant(),
                    certificate.getNotAfter().toInstant(), consequence);
        }
    }

    /**
     * Whether a file is PEM: {@code -----BEGIN} anywhere in it, not only near the start. Bundles often open with
     * text: curl's {@code cacert.pem} with a page of comments, {@code openssl x509 -text} with the decoded
     * certificate, {@code openssl pkcs12 -nokeys} with {@code Bag Attributes}; the JDK's parser skips it. The whole
     * file is read anyway. A file that opens as a store does (a DER {@code SEQUENCE}, as PKCS#12 does, or the JKS or
     * JCEKS magic number) is a store, whatever bytes it holds further on.
     */
    private static boolean isPem(byte[] bytes) {
        if (bytes.length == 0 || bytes[0] == 0x30 || startsWith(bytes, JKS_MAGIC) || startsWith(bytes, JCEKS_MAGIC)) {
            return false;
        }
        return new String(bytes, StandardCharsets.ISO_8859_1).contains("-----BEGIN");
    }

    private static boolean startsWith(byte[] bytes, byte[] prefix) {
        return bytes.length >= prefix.length && Arrays.equals(bytes, 0, prefix.length, prefix, 0, prefix.length);
    }

    private static KeyStore fromPem(Path path, byte[] bytes) {
        Collection<? extends Certificate> certificates;
        try {
            certificates = CertificateFactory.getInstance("X.509")
                    .generateCertificates(new ByteArrayInputStream(bytes));
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("trustStore: " + path + " (expected: PEM certificates; "
                    + e.getMessage() + ")", e);
        }
        return inMemory(certificates);
    }

    /**
     * The certificates of a DER file (one certificate, or a PKCS#7 bundle), or {@code null} when it holds none: a
     * PKCS#12 store starts with a DER {@code SEQUENCE} too. (The JDK's own message for a certificate given as a store
     * was "Please load it with a specified type", an option the proxy does not have.)
     */
    private static @Nullable Collection<? extends Certificate> derCertificates(byte[] bytes) {
        try {
            Collection<? extends Certificate> certificates = CertificateFactory.getInstance("X.509")
                    .generateCertificates(new ByteArrayInputStream(bytes));
            return certificates.isEmpty() ? null : certificates;
        } catch (GeneralSecurityException | RuntimeException notCertificates) {
            return null;
        }
    }

    private static KeyStore inMemory(Collection<? extends Certificate> certificates) {
        try {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            List<Certificate> list = new ArrayList<>(certificates);
            for (int i = 0; i < list.size(); i++) {
                store.setCertificateEntry("pem-" + i, list.get(i));
            }
            return store;
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalStateException("in-memory trust store: " + e.getMessage(), e);
        }
    }

    /**
     * Loads a store from the bytes already read, of the type its first bytes say: from a path of any file system (a
     * zip, an in-memory one), where the JDK's {@code KeyStore.getInstance(File, char[])}, which probes the type itself,
     * needs a {@code File} and failed on them.
     */
    private static KeyStore load(Path path, byte[] bytes, char @Nullable [] password, String what, String expected) {
        String type = startsWith(bytes, JKS_MAGIC) ? "JKS" : startsWith(bytes, JCEKS_MAGIC) ? "JCEKS"
                : bytes.length > 0 && bytes[0] == 0x30 ? "PKCS12" : null;
        if (type == null) {
            throw new IllegalArgumentException(what + ": " + path + " (expected: " + expected + "; "
                    + (isPem(bytes) ? "this one is PEM: make a store of the certificate and its key with openssl "
                            + "pkcs12 -export -in cert.pem -inkey key.pem -out proxy.p12)"
                            : "its first bytes are not those of one)"));
        }
        try {
            KeyStore store = KeyStore.getInstance(type);
            store.load(new ByteArrayInputStream(bytes), password);
            return store;
        } catch (IOException e) {
            if (e.getCause() instanceof UnrecoverableKeyException
                    || String.valueOf(e.getMessage()).contains("password")) {
                throw new IllegalArgumentException(what + ": " + path + " (cannot be read: wrong password)", e);
            }
            throw new IllegalArgumentException(what + ": " + path + " (expected: " + expected + "; "
                    + (derCertificates(bytes) != null ? "this one is a certificate without its private key (DER)"
                            : "not a readable " + type + " store: " + e.getMessage()) + ")", e);
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new IllegalArgumentException(what + ": " + path + " (expected: " + expected + "; "
                    + e.getMessage() + ")", e);
        }
    }

    private static byte[] read(Path path, String what) {
        try {
            return Files.readAllBytes(path);
        } catch (IOException e) {
            throw new IllegalArgumentException(what + ": " + path + " (expected: a readable file)", e);
        }
    }
}
