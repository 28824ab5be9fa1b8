using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace VideoMatch.Tests;

/// <summary>A private CA, a server certificate for 127.0.0.1 and localhost, a client certificate it signed, one it did not, and a server-only one it signed.</summary>
internal sealed class TestCertificates
{
    private readonly string _folder;

    public TestCertificates(string folder)
    {
        _folder = folder;
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=VideoMatch Test CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var authority = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(Path("ca.pem"), authority.ExportCertificatePem());

        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        var (server, serverKey) = Issue(authority, "CN=127.0.0.1", "1.3.6.1.5.5.7.3.1", names.Build());
        File.WriteAllText(Path("server.pem"), server.ExportCertificatePem());
        File.WriteAllText(Path("server.key"), serverKey.ExportPkcs8PrivateKeyPem());
        Client = WithKey(Issue(authority, "CN=videomatch-client", "1.3.6.1.5.5.7.3.2", null));
        ServerOnly = WithKey(Issue(authority, "CN=videomatch-other-server", "1.3.6.1.5.5.7.3.1", null));

        using var rogueKey = RSA.Create(2048);
        var rogueRequest = new CertificateRequest("CN=rogue", rogueKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        rogueRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        Rogue = Reload(rogueRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)));
    }

    public X509Certificate2 Client { get; }

    public X509Certificate2 Rogue { get; }

    /// <summary>Signed by the CA, but for servers only (extended key usage serverAuth): not a client's.</summary>
    public X509Certificate2 ServerOnly { get; }

    public string[] ServerSettings() => [$"--Security:CertificatePath={Path("server.pem")}", $"--Security:CertificateKeyPath={Path("server.key")}"];

    public string[] MutualSettings() => [.. ServerSettings(), $"--Security:ClientCertificateAuthorityPath={Path("ca.pem")}"];

    /// <summary>A file of the set (ca.pem, server.pem, server.key).</summary>
    public string Path(string name) => System.IO.Path.Combine(_folder, name);

    private static (X509Certificate2 Certificate, RSA Key) Issue(X509Certificate2 authority, string subject, string usage, X509Extension? names)
    {
        var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        if (names is not null)
        {
            request.CertificateExtensions.Add(names);
        }

        var serial = RandomNumberGenerator.GetBytes(8);
        return (request.Create(authority, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), serial), key);
    }

    private static X509Certificate2 WithKey((X509Certificate2 Certificate, RSA Key) issued) => Reload(issued.Certificate.CopyWithPrivateKey(issued.Key));

    // A PKCS#12 round trip gives the key a form the TLS stack can use for client authentication.
    private static X509Certificate2 Reload(X509Certificate2 certificate) =>
        X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
}
