using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Globalization;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace VideoMatch.Server.Security;

/// <summary>
/// Reads a unary call's 5-byte gRPC message header before gRPC does, and answers a header no gRPC library sends —
/// a compressed flag other than 0 or 1, compression without grpc-encoding, a length over Limits:MaxMessageBytes —
/// with a status naming the problem; gRPC itself would answer UNKNOWN and log a stack trace per request. Nothing
/// is consumed: gRPC reads the same bytes. Streams check their messages in their session instead, where the
/// config time-out applies to a stream that sends nothing.
/// </summary>
internal sealed class UnaryFramingMiddleware(RequestDelegate next, IOptions<LimitsOptions> limits)
{
    private const int HeaderBytes = 5;

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { Method.Type: MethodType.Unary })
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var reader = context.Request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
            if (read.Buffer.Length >= HeaderBytes || read.IsCompleted || read.IsCanceled)
            {
                break;
            }

            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        var problem = read.Buffer.Length >= HeaderBytes ? Check(read.Buffer.Slice(0, HeaderBytes), context.Request.Headers["grpc-encoding"].ToString()) : null;
        // Nothing consumed or examined: gRPC's own read gets these bytes at once.
        reader.AdvanceTo(read.Buffer.Start);
        if (problem is { } refusal)
        {
            GrpcRefusal.Write(context, refusal.Status, refusal.Message);
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private (StatusCode Status, string Message)? Check(ReadOnlySequence<byte> header, string encoding)
    {
        Span<byte> bytes = stackalloc byte[HeaderBytes];
        header.CopyTo(bytes);
        var flag = bytes[0];
        var length = BinaryPrimitives.ReadUInt32BigEndian(bytes[1..]);
        var identity = encoding.Length == 0 || encoding == "identity";
        if (flag > 1)
        {
            return (StatusCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture,
                $"The gRPC message header has compressed flag {flag}; only 0 (uncompressed) and 1 (compressed as grpc-encoding says) exist."));
        }

        if (flag == 1 && identity)
        {
            return (StatusCode.InvalidArgument, "The message is marked compressed but the request has no grpc-encoding (or identity); name the encoding, or send it uncompressed.");
        }

        var max = limits.Value.MaxMessageBytes;
        return length > max
            ? (StatusCode.ResourceExhausted, string.Create(CultureInfo.InvariantCulture,
                $"The message announces {length} bytes, over this server's limit of {max} bytes (Limits:MaxMessageBytes); send smaller images."))
            : null;
    }
}
