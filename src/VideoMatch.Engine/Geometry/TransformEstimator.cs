using OpenCvSharp;

namespace VideoMatch.Engine.Geometry;

/// <summary>Which motion model a pair's matches are fitted with.</summary>
public enum TransformKind
{
    /// <summary>No transform.</summary>
    None,

    /// <summary>8 degrees of freedom (plane or pure rotation): OpenCV findHomography with USAC MAGSAC.</summary>
    Homography,

    /// <summary>6 degrees of freedom: OpenCV estimateAffine2D with USAC MAGSAC.</summary>
    Affine,

    /// <summary>4 degrees of freedom (rotation, uniform scale, translation): OpenCV estimateAffinePartial2D (RANSAC, then refined).</summary>
    Similarity,
}

/// <summary>
/// A fitted transform: <see cref="Matrix"/> is 3×3 row-major, mapping image-0 pixel coordinates to image 1
/// (x1 ~ M·[x0, y0, 1]); empty when no transform could be fitted, and <see cref="Failure"/> says why.
/// <see cref="InlierMask"/> has one entry per match, in match order: 1 for an inlier.
/// </summary>
public sealed record TransformEstimate(TransformKind Kind, double[] Matrix, int Inliers, byte[] InlierMask, string? Failure)
{
    public bool Found => Matrix.Length == 9;
}

/// <summary>Robust transforms from matched points, through OpenCV's estimators (no hand-written RANSAC).</summary>
public static class TransformEstimator
{
    /// <summary>Default inlier threshold: reprojection error in original pixels.</summary>
    public const double DefaultThresholdPx = 3.0;

    private const double Confidence = 0.999;
    private const int MaxIterations = 2000;

    /// <summary>Fewest matches each model needs.</summary>
    public static int MinimumMatches(TransformKind kind) => kind switch
    {
        TransformKind.Homography => 4,
        TransformKind.Affine => 3,
        TransformKind.Similarity => 2,
        _ => 0,
    };

    /// <param name="keypoints0">x, y pairs in image 0.</param>
    /// <param name="keypoints1">The matching x, y pairs in image 1.</param>
    /// <param name="thresholdPx">Largest reprojection error of an inlier, in pixels.</param>
    public static TransformEstimate Estimate(TransformKind kind, ReadOnlySpan<float> keypoints0, ReadOnlySpan<float> keypoints1, double thresholdPx = DefaultThresholdPx)
    {
        ArgumentOutOfRangeException.ThrowIfEqual((int)kind, (int)TransformKind.None);
        ArgumentOutOfRangeException.ThrowIfNotEqual(keypoints1.Length, keypoints0.Length);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(thresholdPx);
        var count = keypoints0.Length / 2;
        var needed = MinimumMatches(kind);
        if (count < needed)
        {
            return Failed(kind, count, $"{count} matches; a {Name(kind)} needs at least {needed}.");
        }

        using var from = Points(keypoints0);
        using var to = Points(keypoints1);
        using var mask = new Mat();
        using var fitted = kind switch
        {
            TransformKind.Homography => Cv2.FindHomography(from, to, HomographyMethods.USAC_MAGSAC, thresholdPx, mask, MaxIterations, Confidence),
            TransformKind.Affine => Cv2.EstimateAffine2D(from, to, mask, RobustEstimationAlgorithms.USAC_MAGSAC, thresholdPx, MaxIterations, Confidence, 10),
            _ => Cv2.EstimateAffinePartial2D(from, to, mask, RobustEstimationAlgorithms.RANSAC, thresholdPx, MaxIterations, Confidence, 10),
        };
        if (fitted is null || fitted.Empty())
        {
            return Failed(kind, count, $"OpenCV found no {Name(kind)} consistent with the {count} matches (degenerate or too few inliers).");
        }

        var matrix = new double[9];
        var rows = fitted.Rows;
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < 3; c++)
            {
                matrix[(r * 3) + c] = fitted.At<double>(r, c);
            }
        }

        if (rows == 2)
        {
            matrix[8] = 1;
        }

        var inlierMask = new byte[count];
        var inliers = 0;
        if (!mask.Empty())
        {
            for (var i = 0; i < count; i++)
            {
                inlierMask[i] = mask.At<byte>(i) != 0 ? (byte)1 : (byte)0;
                inliers += inlierMask[i];
            }
        }

        return matrix.All(double.IsFinite)
            ? new TransformEstimate(kind, matrix, inliers, inlierMask, null)
            : Failed(kind, count, $"The fitted {Name(kind)} is not finite.");
    }

    /// <summary>Applies a 3×3 row-major transform to a point.</summary>
    public static (double X, double Y) Apply(ReadOnlySpan<double> matrix, double x, double y)
    {
        var w = (matrix[6] * x) + (matrix[7] * y) + matrix[8];
        return (((matrix[0] * x) + (matrix[1] * y) + matrix[2]) / w, ((matrix[3] * x) + (matrix[4] * y) + matrix[5]) / w);
    }

    private static Mat Points(ReadOnlySpan<float> xy)
    {
        var points = new Mat(xy.Length / 2, 1, MatType.CV_32FC2);
        xy.CopyTo(points.AsSpan<float>());
        return points;
    }

    private static TransformEstimate Failed(TransformKind kind, int count, string why) => new(kind, [], 0, new byte[count], why);

    private static string Name(TransformKind kind) => kind switch
    {
        TransformKind.Homography => "homography",
        TransformKind.Affine => "affine transform",
        _ => "similarity transform",
    };
}
