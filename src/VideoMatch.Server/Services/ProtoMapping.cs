using System.Globalization;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Geometry;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Server.Services;

/// <summary>Between the wire types and the engine's. The engine borrows pixel bytes; nothing is copied here.</summary>
internal static class ProtoMapping
{
    /// <exception cref="FrameRejectedException">The image is missing or names an unknown format or encoding.</exception>
    public static FrameInput ToFrameInput(Image? image)
    {
        switch (image?.DataCase)
        {
            case Image.DataOneofCase.Raw:
                var raw = image.Raw;
                var format = raw.Format switch
                {
                    PixelFormat.Gray8 => FramePixelFormat.Gray8,
                    PixelFormat.Rgb24 => FramePixelFormat.Rgb24,
                    PixelFormat.Bgr24 => FramePixelFormat.Bgr24,
                    PixelFormat.Rgba32 => FramePixelFormat.Rgba32,
                    _ => throw new FrameRejectedException($"Pixel format {raw.Format} is not supported; use PIXEL_FORMAT_GRAY8, RGB24, BGR24 or RGBA32."),
                };
                return FrameInput.Raw(format, Checked(raw.Width, "width"), Checked(raw.Height, "height"), Checked(raw.RowStride, "row_stride"), raw.Data.Memory);
            case Image.DataOneofCase.Encoded:
                var encoding = image.Encoded.Encoding switch
                {
                    ImageEncoding.Jpeg => FrameEncoding.Jpeg,
                    ImageEncoding.Png => FrameEncoding.Png,
                    _ => throw new FrameRejectedException($"Image encoding {image.Encoded.Encoding} is not supported; use IMAGE_ENCODING_JPEG or IMAGE_ENCODING_PNG."),
                };
                return FrameInput.Encoded(encoding, image.Encoded.Data.Memory);
            default:
                throw new FrameRejectedException("The frame carries no image; set image.raw or image.encoded.");
        }
    }

    public static Matches ToMatches(PairMatchResult result)
    {
        var matches = new Matches { Count = (uint)result.Count };
        matches.Keypoints0.AddRange(result.Keypoints0);
        matches.Keypoints1.AddRange(result.Keypoints1);
        matches.Scores.AddRange(result.Scores);
        return matches;
    }

    /// <summary>The engine's transform kind for a wire value; null for a value this server does not know.</summary>
    public static TransformKind? ToKind(TransformModel model) => model switch
    {
        TransformModel.Unspecified => TransformKind.None,
        TransformModel.Homography => TransformKind.Homography,
        TransformModel.Affine => TransformKind.Affine,
        TransformModel.Similarity => TransformKind.Similarity,
        _ => null,
    };

    /// <summary>Fits the transform to a pair's matches; null when none was asked for.</summary>
    public static Transform? EstimateTransform(TransformKind kind, double thresholdPx, PairMatchResult matches)
    {
        if (kind == TransformKind.None)
        {
            return null;
        }

        var estimate = TransformEstimator.Estimate(kind, matches.Keypoints0, matches.Keypoints1, thresholdPx);
        var transform = new Transform
        {
            Model = kind switch
            {
                TransformKind.Homography => TransformModel.Homography,
                TransformKind.Affine => TransformModel.Affine,
                _ => TransformModel.Similarity,
            },
            Inliers = (uint)estimate.Inliers,
            InlierMask = Google.Protobuf.ByteString.CopyFrom(estimate.InlierMask),
            Failure = estimate.Failure ?? "",
        };
        transform.Matrix.AddRange(estimate.Matrix);
        return transform;
    }

    public static Timings ToTimings(BatchTimings timings, double preprocessMs) => new()
    {
        QueueWaitMs = (float)timings.QueueWaitMs,
        InferenceMs = (float)timings.InferenceMs,
        BatchSize = (uint)timings.BatchSize,
        PreprocessMs = (float)preprocessMs,
    };

    // Sizes beyond int range are rejected by validation as over the limit, not wrapped.
    /// <summary>A raw frame's size field as sent; one no frame can have is refused with the value the client sent.</summary>
    private static int Checked(uint value, string field) => value <= int.MaxValue
        ? (int)value
        : throw new FrameRejectedException(string.Create(CultureInfo.InvariantCulture,
            $"raw.{field} = {value} cannot describe a frame (no frame is that large); the frame's header looks corrupt."));
}
