using System.Globalization;
using Grpc.Core;

namespace VideoMatch.Server.Security;

/// <summary>A gRPC answer written by middleware before the call's handler runs: trailers-only, no body read.</summary>
internal static class GrpcRefusal
{
    /// <param name="message">Printable ASCII, so grpc-message needs no percent-encoding.</param>
    public static void Write(HttpContext context, StatusCode status, string message)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)status).ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = message;
    }
}
