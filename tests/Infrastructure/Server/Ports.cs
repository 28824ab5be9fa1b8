using System.Net;
using System.Net.Sockets;

namespace VideoMatch.Tests;

internal static class Ports
{
    /// <summary>A loopback port free a moment ago, for listeners that need a fixed port (a setting, not port 0).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
