using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace VideoMatch.Server.Security;

/// <summary>
/// The TLS material of <see cref="SecurityOptions"/>, loaded once at start so that a bad file stops the server
/// with its setting's name instead of failing the first handshake (or the host) later.
/// </summary>
internal sealed class ServerCertificates
{
    /// <summary>Extended key usage "TLS web client authentication".</summary>
    private const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";

    private ServerCertificates(X509Certificate2 server, X509Certificate2? clientAuthority) => (Server, ClientAuthority) = (server, clientAuthority);

    public X509Certificate2 Server { get; }

    /// <summary>Mutual TLS: the CA client certificates must chain to; null without mutual TLS.</summary>
    public X509Certificate2? ClientAuthority { get; }

    /// <summary>The certificates, or null without TLS or when a file is missing (the options validation says which).</summary>
    /// <exception cref="InvalidOperationException">A file exists but is not a usable PEM certificate or key.</exception>
    public static ServerCertificates? Load(SecurityOptions security)
    {
        if (!security.UsesTls || !File.Exists(security.CertificatePath) || !File.Exists(security.CertificateKeyPath)
            || (security.ClientCertificateAuthorityPath.Length > 0 && !File.Exists(security.ClientCertificateAuthorityPath)))
        {
            return null;
        }

        X509Certificate2 server;
        try
        {
            server = X509Certificate2.CreateFromPemFile(security.CertificatePath, security.CertificateKeyPath);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"Security:CertificatePath '{security.CertificatePath}' with Security:CertificateKeyPath '{security.CertificateKeyPath}' could not be loaded as a PEM certificate and its private key: {e.Message.TrimEnd('.')}.", e);
        }

        if (!server.HasPrivateKey)
        {
            throw new InvalidOperationException($"Security:CertificateKeyPath '{security.CertificateKeyPath}' holds no private key for '{security.CertificatePath}'.");
        }

        if (security.ClientCertificateAuthorityPath.Length == 0)
        {
            return new ServerCertificates(server, null);
        }

        try
        {
            return new ServerCertificates(server, X509Certificate2.CreateFromPem(File.ReadAllText(security.ClientCertificateAuthorityPath)));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"Security:ClientCertificateAuthorityPath '{security.ClientCertificateAuthorityPath}' is not a PEM certificate: {e.Message.TrimEnd('.')}.", e);
        }
    }

    /// <summary>
    /// Mutual TLS: the client's certificate must chain to the configured authority (and only to it) and, when it
    /// names its purposes, be meant for client authentication (a server certificate from the same CA is refused).
    /// </summary>
    public bool AcceptsClient(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        if (ClientAuthority is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ClientAuthority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(ClientAuthentication));
        return chain.Build(certificate);
    }
}

/// <summary>The gRPC addresses (<c>--urls</c>, <c>Urls</c>, <c>ASPNETCORE_URLS</c>) checked against the TLS settings.</summary>
internal static class GrpcAddresses
{
    /// <summary>Throws with the address and what to change when an address cannot be used, or would not be what was asked for.</summary>
    public static void Check(IEnumerable<string> urls, bool tls)
    {
        foreach (var url in urls)
        {
            var parsable = url.Replace("://+:", "://localhost:", StringComparison.Ordinal).Replace("://*:", "://localhost:", StringComparison.Ordinal)
                .Replace("://[::]:", "://localhost:", StringComparison.Ordinal);
            if (!Uri.TryCreate(parsable, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https")
                || !parsable.Contains($":{parsed.Port}", StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"The gRPC address '{url}' is not http://HOST:PORT or https://HOST:PORT with a port from 0 to 65535 (HOST may be + or * for every address).");
            }

            if (tls && parsed.Scheme == "http")
            {
                throw new InvalidOperationException(
                    $"TLS is configured (Security:CertificatePath) but the gRPC address '{url}' is plaintext, so nothing would be encrypted. Use https:// (for example --urls https://+:50051, or Urls=https://+:50051 in a container), or remove the certificate settings.");
            }

            if (!tls && parsed.Scheme == "https")
            {
                throw new InvalidOperationException(
                    $"The gRPC address '{url}' is https but no certificate is configured; set Security:CertificatePath and Security:CertificateKeyPath, or use http://.");
            }
        }
    }
}
